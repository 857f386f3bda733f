"""AccessToken2 ("007") against the official vectors (spec/agora.md A.7) and every reject reason.

Vectors are compared by decoded payload and signature, never by the base64 string: the string
depends on the zlib build that made it (spec A.1), ours writes stored blocks.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import struct
import zlib

import pytest

from onair.domain import accesstoken2 as at2
from onair.domain.accesstoken2 import (
    AccessToken,
    Reason,
    RtcPrivilege,
    RtcRole,
    Service,
    ServiceType,
    TokenRejected,
)

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
WRONG_CERT = "a" * 32
CHANNEL = "7d72365eb983485397e3e3f9d460bdda"
UID = 2882341273
UID_STR = "2882341273"
ISSUE_TS = 1111111
SALT = 1
EXPIRE = 600

ALL_RTC = dict.fromkeys(RtcPrivilege, EXPIRE)


def svc(type_: ServiceType, privileges: dict[int, int], *fields: str | int) -> Service:
    return Service(type_, privileges, tuple(fields))


def fixture_token(*services: Service) -> AccessToken:
    return AccessToken(APP_ID, ISSUE_TS, EXPIRE, SALT, services)


RTC_JOIN = svc(ServiceType.RTC, {1: EXPIRE}, CHANNEL, UID_STR)
RTM_TEST_USER = svc(ServiceType.RTM, {1: EXPIRE}, "test_user")
CHAT_USER = svc(ServiceType.CHAT, {1: EXPIRE}, UID_STR)
CHAT_APP = svc(ServiceType.CHAT, {2: EXPIRE}, "")

# (name, exact string from the spec, the fields that string carries). Strings copied verbatim.
VECTORS: list[tuple[str, str, AccessToken]] = [
    (
        "V1 RTC uid (py/node)",
        "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj",
        fixture_token(RTC_JOIN),
    ),
    (
        "V1 RTC uid (go)",
        "007eJxSYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxoAAAAD//8JqJOM=",
        fixture_token(RTC_JOIN),
    ),
    (
        "V2 RTC uid 0 (py/node)",
        "007eJxTYLhzZP08Lxa1Pg57+TcXb/3cZ3wi4V6kbpbOog0G2dOYk20UGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiQwMADacImo=",
        fixture_token(svc(ServiceType.RTC, {1: EXPIRE}, CHANNEL, "")),
    ),
    (
        "V2 RTC uid 0 (go)",
        "007eJxSYLhzZP08Lxa1Pg57+TcXb/3cZ3wi4V6kbpbOog0G2dOYk20UGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiQwMgAAAAP//Npwiag==",
        fixture_token(svc(ServiceType.RTC, {1: EXPIRE}, CHANNEL, "")),
    ),
    (
        "V3 RTC publisher + RTM (node; RTM added first)",
        "007eJxTYOAQsrQ5s3TfH+1tvy8zZZ46EpCc0V43JXdGd2jS8porKo4KDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaGScbG7l8EGCKYGBgYGRgYmBgYGVgYGMF8JjDJDCZZwKQCg3mKuZGxmWlqkqWFsYmFqbGleapxqnGaZYqJmUFSSkoiF4ORhYWRsYmhkbkxyCyISZwMJanFJfGlxalFACKnKng=",
        fixture_token(RTM_TEST_USER, svc(ServiceType.RTC, ALL_RTC, CHANNEL, UID_STR)),
    ),
    (
        "V4 RTM (go)",
        "007eJxSYOCdJftjyTM2zxW6Xhm/5T0j5LdcUt/xYVt48fb5Mp3PX9coMFiaGzg7GpumpJoZJJuYmJmYJiUlplokGhmaGpgZJhkbu38RYIhgYmBgZABhJgZGBkYwn5OhJLW4JL60OLUIEAAA//9ZVh6A",
        fixture_token(RTM_TEST_USER),
    ),
    (
        "V4 RTM (node 2.0.6)",
        "007eJxTYOCdJftjyTM2zxW6Xhm/5T0j5LdcUt/xYVt48fb5Mp3PX9coMFiaGzg7GpumpJoZJJuYmJmYJiUlplokGhmaGpgZJhkbu38RYIhgYmBgZABhJgZGBkYwn5OhJLW4JL60OLUIAFlWHoA=",
        fixture_token(RTM_TEST_USER),
    ),
    (
        "V5 Chat user (py)",
        "007eJxTYNAIsnbS3v/A5t2TC6feR15r+6cq8bqAvfaW+tk/Vzz+p6xTYLA0N3B2NDZNSTUzSDYxMTMxTUpKTLVINDI0NTAzTDI2dv8iwBDBxMDAyADCrEDMCOZzMRhZWBgZmxgamRsDAB+lHrg=",
        fixture_token(CHAT_USER),
    ),
    (
        "V5 Chat user (node)",
        "007eJxTYNAIsnbS3v/A5t2TC6feR15r+6cq8bqAvfaW+tk/Vzz+p6xTYLA0N3B2NDZNSTUzSDYxMTMxTUpKTLVINDI0NTAzTDI2dv8iwBDBxMDAyADCrAyMDIxgPheDkYWFkbGJoZG5MQAfpR64",
        fixture_token(CHAT_USER),
    ),
    (
        "V6 Chat app (py)",
        "007eJxTYNDNaz3snC8huEfHWdz6s98qltq4zqy9fl99Uh0FDvy6F6DAYGlu4OxobJqSamaQbGJiZmKalJSYapFoZGhqYGaYZGzs/kWAIYKJgYGRAYRZgZgJzGdgAACt8hhr",
        fixture_token(CHAT_APP),
    ),
    (
        "V6 Chat app (node)",
        "007eJxTYNDNaz3snC8huEfHWdz6s98qltq4zqy9fl99Uh0FDvy6F6DAYGlu4OxobJqSamaQbGJiZmKalJSYapFoZGhqYGaYZGzs/kWAIYKJgYGRAYRZGRgZmMB8BgYArfIYaw==",
        fixture_token(CHAT_APP),
    ),
    (
        "V7 five services (py)",
        "007eJxTYHh8IPKzTvBdf9ce8bk7G61vs06oca1e815/ot4+x7rfjDIKDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaGScbG7l8EGCKYGBgYGRgYWIEkCxCD+ExgkhlMsoBJBQbzFHMjYzPT1CRLC2MTC1NjS/NU41TjNMsUEzODpJSURC4GIwsLI2MTQyNzYyagORCTkEVZ4KKsWOXZgWIQm1HF//8HAL01L5I=",
        fixture_token(
            svc(ServiceType.RTC, ALL_RTC, CHANNEL, UID_STR),
            svc(ServiceType.RTM, {1: EXPIRE}, UID_STR),
            svc(ServiceType.FPA, {1: EXPIRE}),
            CHAT_USER,
            svc(ServiceType.APAAS, {2: EXPIRE}, "", UID_STR, -1),
        ),
    ),
    (
        "V8 APaaS room user + RTM + Chat (py)",
        "007eJxTYOi6fYVB7qlA2ZWQ+Ko3N2IafQOddj+K4tjh3PS7P2vx4a0KDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaGScbG7l8EGCKYGBgYGRgYmBmYgDQjmM/FYGRhYWRsYmhkbswKF1VgMDMwMza2MDYxskg0NktLSjROSzIzMDZISk1OszCwNEllh6tlZjA0MkY2hpEBANqIKYQ=",
        fixture_token(
            svc(ServiceType.APAAS, {1: EXPIRE}, "123", UID_STR, 1),
            svc(ServiceType.RTM, {1: EXPIRE}, UID_STR),
            svc(ServiceType.CHAT, {1: EXPIRE}, hashlib.md5(UID_STR.encode()).hexdigest()),
        ),
    ),
    (
        "V9 APaaS user (py)",
        "007eJxTYEg4e9Zj9gch+QkfFi1qM7tdkn1G3Kzt6FTJpTpzRQ4brixTYLA0N3B2NDZNSTUzSDYxMTMxTUpKTLVINDI0NTAzTDI2dv8iwBDBxMDAyADC7EDMBOYzMHAxGFlYGBmbGBqZG///DwDuNR56",
        fixture_token(svc(ServiceType.APAAS, {2: EXPIRE}, "", UID_STR, -1)),
    ),
    (
        "V10 APaaS app (py)",
        "007eJxTYJgT3rumdJdoWJpC3aNTb4o76swyLsrHvmznOn/x1cQM9gcKDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaGScbG7l8EGCKYGBgYGUCYHYiZwXwQ+P8fAADUHTQ=",
        fixture_token(svc(ServiceType.APAAS, {3: EXPIRE}, "", "", -1)),
    ),
]

IDS = [name for name, _, _ in VECTORS]


def content_of(token: str) -> bytes:
    return zlib.decompress(base64.b64decode(token[3:]))


@pytest.mark.parametrize(("name", "vector", "fields"), VECTORS, ids=IDS)
def test_builder_reproduces_official_payload_and_signature(
    name: str, vector: str, fields: AccessToken
) -> None:
    ours = at2.build(fields, CERT)
    assert content_of(ours) == content_of(vector)
    assert at2.parse(ours).signature == at2.parse(vector).signature


@pytest.mark.parametrize(("name", "vector", "fields"), VECTORS, ids=IDS)
def test_parser_reads_official_fields_and_verifies(
    name: str, vector: str, fields: AccessToken
) -> None:
    parsed = at2.parse(vector)
    assert parsed.complete
    assert parsed.token.app_id == APP_ID
    assert (parsed.token.issue_ts, parsed.token.expire, parsed.token.salt) == (
        ISSUE_TS,
        EXPIRE,
        SALT,
    )
    assert parsed.token.services == tuple(sorted(fields.services, key=lambda s: s.type))
    assert at2.signature_valid(parsed, CERT)
    assert not at2.signature_valid(parsed, WRONG_CERT)


def test_v1_signature_and_intermediate_keys_match_the_spec() -> None:
    cert = CERT.encode()
    assert at2._k1(ISSUE_TS, cert).hex() == (
        "e0f6141e54329d72102500478ec18e0020a5eeef53bbcccc442c6c2f7f178251"
    )
    assert at2._hmac_sha256(struct.pack("<I", SALT), at2._k1(ISSUE_TS, cert)).hex() == (
        "cee2fa8dcbe868c30ca8c959d97fad4a5049c634da48449f1b8f59c14fa61073"
    )
    assert at2.parse(VECTORS[0][1]).signature.hex() == (
        "16a0b84c5a5e82cbf74fb813d09f59c54bdac9c06120580539ac97578e958b1a"
    )


def test_v1_worked_example_layout() -> None:
    content = content_of(VECTORS[0][1])
    assert len(content) == 138
    assert content[34:36] == b"\x20\x00" and content[36:68] == APP_ID.encode()
    assert content[126:128] == b"\x0a\x00" and content[128:] == UID_STR.encode()


def test_rtc_builder_matches_v1_for_uid_and_account_and_v2_for_uid_zero() -> None:
    common = dict(token_expire=EXPIRE, privilege_expire=EXPIRE, issue_ts=ISSUE_TS, salt=SALT)
    by_uid = at2.build_rtc_token(APP_ID, CERT, CHANNEL, UID, RtcRole.SUBSCRIBER, **common)
    by_account = at2.build_rtc_token(APP_ID, CERT, CHANNEL, UID_STR, RtcRole.SUBSCRIBER, **common)
    wildcard = at2.build_rtc_token(APP_ID, CERT, CHANNEL, 0, RtcRole.SUBSCRIBER, **common)
    assert by_uid == by_account
    assert content_of(by_uid) == content_of(VECTORS[0][1])
    assert content_of(wildcard) == content_of(VECTORS[2][1])


def test_rtc_publisher_builder_matches_the_generic_builder() -> None:
    common = dict(token_expire=EXPIRE, privilege_expire=EXPIRE, issue_ts=ISSUE_TS, salt=SALT)
    fast = at2.build_rtc_token(APP_ID, CERT, CHANNEL, UID, RtcRole.PUBLISHER, **common)
    generic = at2.build(fixture_token(svc(ServiceType.RTC, ALL_RTC, CHANNEL, UID_STR)), CERT)
    assert fast == generic


def test_rtm_builder_matches_v4() -> None:
    token = at2.build_rtm_token(
        APP_ID, CERT, "test_user", expire=EXPIRE, issue_ts=ISSUE_TS, salt=SALT
    )
    assert content_of(token) == content_of(VECTORS[6][1])


def test_stored_block_encoding_is_zlib_level_0() -> None:
    content = content_of(VECTORS[0][1])
    assert at2._zlib_stored(content) == zlib.compress(content, 0)


# --- uid rules (spec A.4) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "stored"),
    [(0, ""), ("0", "0"), (1, "1"), (2**32 - 1, "4294967295"), ("", ""), ("alice", "alice")],
)
def test_uid_string(uid: int | str, stored: str) -> None:
    assert at2.rtc_uid_string(uid) == stored


@pytest.mark.parametrize("uid", [False, True, 0.0, None, -1, 2**32, "x" * 256, b"1"])
def test_uid_refuses_lookalikes_and_out_of_range(uid: object) -> None:
    with pytest.raises(ValueError):
        at2.rtc_uid_string(uid)  # type: ignore[arg-type]


# --- build-time checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        dict(app_id="not-hex"),
        dict(issue_ts=-1),
        dict(expire=2**32),
        dict(salt=0),
        dict(services=()),
        dict(services=(Service(99, {}, ()),)),
        dict(services=(Service(ServiceType.RTC, {1: 2**32}, (CHANNEL, "")),)),
        dict(services=(Service(ServiceType.RTC, {1: 1}, (CHANNEL,)),)),
        dict(services=(Service(ServiceType.APAAS, {1: 1}, ("", "", 2**15)),)),
        dict(services=(Service(ServiceType.RTM, {1: 1}, ("x" * 70_000,)),)),
    ],
)
def test_build_refuses_bad_fields(change: dict[str, object]) -> None:
    fields = dataclasses.replace(fixture_token(RTC_JOIN), **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        at2.build(fields, CERT)


def test_certificate_never_appears_in_errors() -> None:
    secret = "Z" * 31 + "!"
    with pytest.raises(ValueError) as info:
        at2.build(fixture_token(RTC_JOIN), secret)
    assert secret not in str(info.value)


# --- verification reasons ---------------------------------------------------------------------

NOW = ISSUE_TS + 1


def rtc(
    uid: int | str = UID,
    role: RtcRole = RtcRole.PUBLISHER,
    *,
    token_expire: int = EXPIRE,
    privilege_expire: int = EXPIRE,
    app_id: str = APP_ID,
    cert: str = CERT,
) -> str:
    return at2.build_rtc_token(
        app_id,
        cert,
        CHANNEL,
        uid,
        role,
        token_expire=token_expire,
        privilege_expire=privilege_expire,
        issue_ts=ISSUE_TS,
        salt=SALT,
    )


def rewrap(content: bytes) -> str:
    return "007" + base64.b64encode(zlib.compress(content)).decode()


def check_rtc(token: str, **overrides: object) -> None:
    kwargs: dict[str, object] = dict(
        app_id=APP_ID, app_certificate=CERT, channel=CHANNEL, uid=UID, now=NOW
    )
    kwargs.update(overrides)
    at2.verify_rtc(token, **kwargs)  # type: ignore[arg-type]


def unknown_service_token() -> str:
    # RTC followed by a service type this code does not know, then bytes nobody can parse.
    signing_info = at2.encode_signing_info(fixture_token(RTC_JOIN))
    signing_info = signing_info.replace(b"\x01\x00\x01\x00", b"\x02\x00\x01\x00", 1)  # count 2
    signing_info += b"\x63\x00\xff\xff\xff"
    signature = at2.sign(signing_info, CERT, ISSUE_TS, SALT)
    return rewrap(b"\x20\x00" + signature + signing_info)


V1_CONTENT = content_of(VECTORS[0][1])

REASON_CASES: list[tuple[str, Reason, str, dict[str, object]]] = [
    ("not a string", Reason.MALFORMED, None, {}),  # type: ignore[list-item]
    ("empty", Reason.WRONG_VERSION, "", {}),
    ("006 token", Reason.WRONG_VERSION, "006" + APP_ID + "IACV0fZUBw", {}),
    ("bad base64", Reason.MALFORMED, "007!!!!", {}),
    ("non-ascii", Reason.MALFORMED, "007eJx…", {}),
    ("too long", Reason.MALFORMED, "007" + "A" * 10_000, {}),
    ("non-canonical base64", Reason.MALFORMED, VECTORS[2][1][:-2] + "r=", {}),
    ("not zlib", Reason.MALFORMED, "007" + base64.b64encode(b"hello").decode(), {}),
    ("truncated zlib", Reason.MALFORMED, "007" + base64.b64encode(zlib.compress(V1_CONTENT)[:-3]).decode(), {}),
    ("trailing data", Reason.MALFORMED, "007" + base64.b64encode(zlib.compress(V1_CONTENT) + b"x").decode(), {}),
    ("zlib bomb", Reason.MALFORMED, rewrap(b"\x20\x00" + b"\0" * 100_000), {}),
    ("truncated payload", Reason.MALFORMED, rewrap(V1_CONTENT[:-3]), {}),
    ("short signature", Reason.MALFORMED, rewrap(b"\x10\x00" + V1_CONTENT[2:18] + V1_CONTENT[34:]), {}),
    ("invalid utf-8", Reason.MALFORMED, rewrap(V1_CONTENT[:128] + b"\xff" * 10), {}),
    ("wrong app id", Reason.WRONG_APP_ID, rtc(), dict(app_id="0" * 32)),
    ("wrong certificate", Reason.BAD_SIGNATURE, rtc(), dict(app_certificate=WRONG_CERT)),
    ("certificate not hex", Reason.BAD_SIGNATURE, rtc(), dict(app_certificate="x" * 32)),
    ("tampered field", Reason.BAD_SIGNATURE, rewrap(V1_CONTENT[:-1] + b"4"), dict(uid=2882341274)),
    ("expired", Reason.EXPIRED, rtc(), dict(now=ISSUE_TS + EXPIRE + 1)),
    ("rtm token", Reason.MISSING_SERVICE, at2.build_rtm_token(APP_ID, CERT, "u", expire=EXPIRE, issue_ts=ISSUE_TS, salt=SALT), {}),
    ("other channel", Reason.WRONG_CHANNEL, rtc(), dict(channel=CHANNEL.upper())),
    ("other uid", Reason.WRONG_UID, rtc(), dict(uid=UID + 1)),
    ("string 0 is no wildcard", Reason.WRONG_UID, rtc(uid="0"), dict(uid=7)),
    ("server-assigned uid needs a wildcard", Reason.WRONG_UID, rtc(), dict(uid=0)),
    ("subscriber publishing", Reason.MISSING_PRIVILEGE, rtc(role=RtcRole.SUBSCRIBER), dict(required=at2.PUBLISHER_PRIVILEGES)),
    ("privilege expired", Reason.PRIVILEGE_EXPIRED, rtc(privilege_expire=10), dict(now=ISSUE_TS + 11)),
]


@pytest.mark.parametrize(
    ("name", "reason", "token", "overrides"), REASON_CASES, ids=[c[0] for c in REASON_CASES]
)
def test_verify_rtc_names_the_reason(
    name: str, reason: Reason, token: str, overrides: dict[str, object]
) -> None:
    with pytest.raises(TokenRejected) as info:
        check_rtc(token, **overrides)
    assert info.value.reason is reason
    assert CERT not in str(info.value)


def test_every_reason_has_a_case() -> None:
    assert {case[1] for case in REASON_CASES} == set(Reason)


@pytest.mark.parametrize(
    ("token_uid", "joiner"), [(0, 0), (0, 7), (0, "alice"), (UID, UID), (UID, UID_STR), ("0", "0")]
)
def test_uid_matching_accepts(token_uid: int | str, joiner: int | str) -> None:
    check_rtc(rtc(uid=token_uid), uid=joiner)


def test_boundaries_are_inclusive() -> None:
    check_rtc(rtc(privilege_expire=10), now=ISSUE_TS + 10, required=at2.PUBLISHER_PRIVILEGES)
    check_rtc(rtc(), now=ISSUE_TS + EXPIRE)


def test_granted_role() -> None:
    for role in RtcRole:
        parsed = at2.parse(rtc(role=role))
        service = parsed.token.service(ServiceType.RTC)
        assert service is not None and at2.granted_role(service) is role


def test_unknown_service_stops_parsing_but_still_verifies() -> None:
    token = unknown_service_token()
    parsed = at2.parse(token)
    assert not parsed.complete
    assert [s.type for s in parsed.token.services] == [ServiceType.RTC]
    check_rtc(token)


def test_verify_rtm() -> None:
    token = at2.build_rtm_token(APP_ID, CERT, "alice", expire=60, issue_ts=ISSUE_TS, salt=SALT)
    common = dict(app_id=APP_ID, app_certificate=CERT, now=NOW)
    at2.verify_rtm(token, user_id="alice", **common)  # type: ignore[arg-type]
    for user_id, token_, reason in [
        ("bob", token, Reason.WRONG_UID),
        ("alice", rtc(), Reason.MISSING_SERVICE),
    ]:
        with pytest.raises(TokenRejected) as info:
            at2.verify_rtm(token_, user_id=user_id, **common)  # type: ignore[arg-type]
        assert info.value.reason is reason


def test_canonical_mode_accepts_ours_and_refuses_foreign_encodings() -> None:
    common = dict(app_id=APP_ID, app_certificate=CERT, now=NOW, canonical=True)
    at2.verify(rtc(), **common)  # type: ignore[arg-type]
    with pytest.raises(TokenRejected) as info:
        at2.verify(VECTORS[0][1], **common)  # type: ignore[arg-type]
    assert info.value.reason is Reason.MALFORMED


def test_padding_bits_survive_inflate_but_not_canonical_verification() -> None:
    token = rtc()
    raw = bytearray(base64.b64decode(token[3:]))
    raw[2] |= 0b0011_1000  # the unused bits after the stored block's 3-bit header
    tampered = "007" + base64.b64encode(bytes(raw)).decode()
    assert tampered != token
    at2.verify(tampered, app_id=APP_ID, app_certificate=CERT, now=NOW)  # same token to Agora
    with pytest.raises(TokenRejected) as info:
        at2.verify(tampered, app_id=APP_ID, app_certificate=CERT, now=NOW, canonical=True)
    assert info.value.reason is Reason.MALFORMED
