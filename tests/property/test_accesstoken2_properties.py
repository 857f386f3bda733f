"""Property 1: token generation and validation consistency."""

from __future__ import annotations

import hmac
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from onair.domain import accesstoken2 as at2
from onair.domain.accesstoken2 import RtcRole, ServiceType, TokenRejected

hex32 = st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32)
channels = st.text(max_size=64)
accounts = st.text(max_size=60).filter(lambda s: len(s.encode()) <= at2.MAX_ACCOUNT_BYTES)
uids = st.one_of(st.integers(0, at2.MAX_UINT32), accounts)
salts = st.integers(1, at2.MAX_SALT)
issue_times = st.integers(0, at2.MAX_UINT32 - 86_400)


@st.composite
def rtc_cases(draw: st.DrawFn) -> dict:
    token_expire = draw(st.integers(1, 86_400))
    return dict(
        app_id=draw(hex32),
        cert=draw(hex32),
        channel=draw(channels),
        uid=draw(uids),
        role=draw(st.sampled_from(RtcRole)),
        token_expire=token_expire,
        privilege_expire=draw(st.integers(1, token_expire)),
        issue_ts=draw(issue_times),
        salt=draw(salts),
    )


def build(case: dict) -> str:
    return at2.build_rtc_token(
        case["app_id"],
        case["cert"],
        case["channel"],
        case["uid"],
        case["role"],
        token_expire=case["token_expire"],
        privilege_expire=case["privilege_expire"],
        issue_ts=case["issue_ts"],
        salt=case["salt"],
    )


def verify(token: str, case: dict, now: int, canonical: bool = False) -> at2.Service:
    publisher = case["role"] is RtcRole.PUBLISHER
    required = at2.PUBLISHER_PRIVILEGES if publisher else at2.SUBSCRIBER_PRIVILEGES
    return at2.verify_rtc(
        token,
        app_id=case["app_id"],
        app_certificate=case["cert"],
        channel=case["channel"],
        uid=case["uid"],
        now=now,
        required=required,
        canonical=canonical,
    )


@settings(max_examples=300)
@given(case=rtc_cases(), data=st.data())
def test_property_1_rtc_round_trip(case: dict, data: st.DataObject) -> None:
    """Property 1: token generation and validation consistency (RTC build -> parse -> verify)."""
    token = build(case)
    parsed = at2.parse(token)
    t = parsed.token
    assert parsed.complete
    assert (t.app_id, t.issue_ts, t.expire, t.salt) == (
        case["app_id"],
        case["issue_ts"],
        case["token_expire"],
        case["salt"],
    )
    (service,) = t.services
    assert service.type == ServiceType.RTC
    assert service.fields == (case["channel"], at2.rtc_uid_string(case["uid"]))
    assert at2.granted_role(service) is case["role"]
    assert set(service.privileges.values()) == {case["privilege_expire"]}

    last_valid = case["issue_ts"] + case["privilege_expire"]
    now = data.draw(st.integers(case["issue_ts"], last_valid), label="now")
    assert verify(token, case, now, canonical=True) == service
    try:
        verify(token, case, last_valid + 1)
    except TokenRejected as exc:
        assert exc.reason in (at2.Reason.EXPIRED, at2.Reason.PRIVILEGE_EXPIRED)
    else:
        raise AssertionError("verified after the privilege expired")


@settings(max_examples=300)
@given(case=rtc_cases(), data=st.data())
def test_property_1_any_single_byte_change_fails(case: dict, data: st.DataObject) -> None:
    """Property 1: token generation and validation consistency (tampering never verifies)."""
    token = build(case)
    index = data.draw(st.integers(0, len(token) - 1), label="index")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != ord(token[index])), label="byte")
    tampered = token[:index] + chr(byte) + token[index + 1 :]
    now = case["issue_ts"]
    try:
        verify(tampered, case, now, canonical=True)
    except TokenRejected:
        pass
    else:
        raise AssertionError(f"tampered token verified: index {index}, byte {byte}")
    # Without the canonical check, a change may only survive if it is invisible after decoding
    # (inflate ignores padding bits in the deflate stream): then it is the same token to Agora.
    try:
        verify(tampered, case, now)
    except TokenRejected:
        return
    original, changed = at2.parse(token), at2.parse(tampered)
    assert (changed.signature, changed.signing_info) == (original.signature, original.signing_info)


@given(
    app_id=hex32, cert=hex32, user_id=st.text(max_size=64), expire=st.integers(1, 86_400),
    issue_ts=issue_times, salt=salts,
)
def test_property_1_rtm_round_trip(
    app_id: str, cert: str, user_id: str, expire: int, issue_ts: int, salt: int
) -> None:
    """Property 1: token generation and validation consistency (RTM login)."""
    token = at2.build_rtm_token(app_id, cert, user_id, expire=expire, issue_ts=issue_ts, salt=salt)
    common = dict(app_id=app_id, app_certificate=cert, user_id=user_id)
    service = at2.verify_rtm(token, now=issue_ts + expire, canonical=True, **common)  # type: ignore[arg-type]
    assert service.fields == (user_id,)
    try:
        at2.verify_rtm(token, now=issue_ts + expire + 1, **common)  # type: ignore[arg-type]
    except TokenRejected as exc:
        assert exc.reason is at2.Reason.EXPIRED
    else:
        raise AssertionError("RTM token verified after expiry")


@given(other=hex32, case=rtc_cases())
def test_property_1_other_certificate_never_verifies(other: str, case: dict) -> None:
    """Property 1: token generation and validation consistency (signature binds the cert)."""
    token = build(case)
    parsed = at2.parse(token)
    assert at2.signature_valid(parsed, other) == (other == case["cert"])


@given(key=st.binary(max_size=64), msg=st.binary(max_size=512))
def test_hmac_shortcut_equals_stdlib(key: bytes, msg: bytes) -> None:
    assert at2._hmac_sha256(key, msg) == hmac.digest(key, msg, "sha256")


@given(content=st.binary(max_size=2048))
def test_stored_block_equals_zlib_level_0(content: bytes) -> None:
    assert at2._zlib_stored(content) == zlib.compress(content, 0)
