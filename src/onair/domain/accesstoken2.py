"""Agora AccessToken2 (version "007"): builder, parser and verifier.

Pure code: no clock, no randomness. The issue time and the salt are arguments, so a token is a
deterministic function of its inputs (the official test vectors rely on that).

Format (spec/agora.md A.1-A.3, from AgoraIO/Tools `python3/src/AccessToken2.py`)::

    token        = "007" + base64(zlib(content))
    content      = string(signature) + signing_info
    signing_info = string(app_id) + u32 issue_ts + u32 expire + u32 salt
                   + u16 count + services sorted by type
    service      = u16 type + map<u16,u32> privileges + type-specific fields
    signature    = HMAC(HMAC(HMAC(u32 issue_ts, cert), ...) ...)   # see `sign`

Every time in a 007 token is *seconds after issue_ts*: the header `expire` and each privilege.

Verification recomputes the signature over the original `signing_info` bytes (never over a
re-serialisation, spec A.6) and compares it in constant time. Failures raise `TokenRejected`
with a `Reason`, so callers can tell a malformed token from an expired one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from functools import lru_cache
from typing import Final

VERSION: Final = "007"
MAX_UINT32: Final = 0xFFFF_FFFF
MAX_SALT: Final = 99_999_999  # the official builders draw salts from 1..99999999
MAX_TOKEN_CHARS: Final = 8_192  # far above any real token; bounds the work a bad input can cause
MAX_PAYLOAD_BYTES: Final = 65_536  # zlib output cap: no decompression bombs
MAX_ACCOUNT_BYTES: Final = 255  # Web SDK: a user account is at most 255 ASCII characters

_HEX = frozenset("0123456789abcdefABCDEF")


class ServiceType(IntEnum):
    RTC = 1
    RTM = 2
    STREAMING = 3
    FPA = 4
    CHAT = 5
    FCDN = 6
    APAAS = 7


class RtcPrivilege(IntEnum):
    JOIN_CHANNEL = 1
    PUBLISH_AUDIO = 2
    PUBLISH_VIDEO = 3
    PUBLISH_DATA = 4


class RtmPrivilege(IntEnum):
    LOGIN = 1


class RtcRole(IntEnum):
    """Agora's numbering (`Role_Publisher = 1`, `Role_Subscriber = 2`)."""

    PUBLISHER = 1
    SUBSCRIBER = 2


PUBLISHER_PRIVILEGES: Final = tuple(RtcPrivilege)
SUBSCRIBER_PRIVILEGES: Final = (RtcPrivilege.JOIN_CHANNEL,)


class Reason(StrEnum):
    MALFORMED = "malformed"
    WRONG_VERSION = "wrong-version"
    WRONG_APP_ID = "wrong-app-id"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"
    MISSING_SERVICE = "missing-service"
    WRONG_CHANNEL = "wrong-channel"
    WRONG_UID = "wrong-uid"
    MISSING_PRIVILEGE = "missing-privilege"
    PRIVILEGE_EXPIRED = "privilege-expired"


class TokenRejected(ValueError):
    """A token failed to parse or verify. `reason` is stable; `detail` is for humans.

    Neither ever contains the app certificate.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


# Field kinds after the privilege map, per service type (spec A.2 table). RTM2 (8) carries a
# permission tree whose layout is not published, so it is parsed like any unknown type.
_STR, _I16 = "str", "i16"
_LAYOUTS: Final[dict[int, tuple[str, ...]]] = {
    ServiceType.RTC: (_STR, _STR),  # channel_name, uid
    ServiceType.RTM: (_STR,),  # user_id
    ServiceType.STREAMING: (_STR, _STR),  # channel_name, account
    ServiceType.FPA: (),
    ServiceType.CHAT: (_STR,),  # user_id ('' for an app token)
    ServiceType.FCDN: (_STR, _STR),  # channel_name, account
    ServiceType.APAAS: (_STR, _STR, _I16),  # room_uuid, user_uuid, role
}


@dataclass(frozen=True, slots=True)
class Service:
    """One service of a token: its type, privileges (id -> seconds after issue_ts), fields."""

    type: int
    privileges: Mapping[int, int]
    fields: tuple[str | int, ...]

    def expires_after(self, privilege: int) -> int | None:
        return self.privileges.get(privilege)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """The signed fields of a token (everything but the signature)."""

    app_id: str
    issue_ts: int
    expire: int
    salt: int
    services: tuple[Service, ...]

    @property
    def expires_at(self) -> int:
        return self.issue_ts + self.expire

    def service(self, type_: int) -> Service | None:
        return next((s for s in self.services if s.type == type_), None)


@dataclass(frozen=True, slots=True)
class ParsedToken:
    token: AccessToken
    signature: bytes
    signing_info: bytes  # verbatim, so unknown services still verify
    complete: bool  # False when parsing stopped at an unknown service type (spec A.6)


# --- uids ------------------------------------------------------------------------------------


def rtc_uid_string(uid: int | str) -> str:
    """The uid as the token stores it.

    Numeric 0 is the wildcard and becomes ''; the *string* "0" is a literal account. A numeric
    uid and its decimal string give identical tokens (spec A.4). bool, float and None are
    refused rather than silently turned into 0 / "None".
    """
    if type(uid) is int and 0 < uid <= MAX_UINT32:  # the common case, first
        return str(uid)
    if isinstance(uid, bool) or not isinstance(uid, int | str):
        raise ValueError("uid must be an int in 0..2^32-1 or a string account")
    if isinstance(uid, int):
        if not 0 <= uid <= MAX_UINT32:
            raise ValueError("numeric uid must be in 0..2^32-1")
        return "" if uid == 0 else str(uid)
    if len(uid.encode()) > MAX_ACCOUNT_BYTES:
        raise ValueError(f"account must be at most {MAX_ACCOUNT_BYTES} bytes")
    return uid


def rtc_service(channel: str, uid: int | str, privileges: Mapping[int, int]) -> Service:
    return Service(ServiceType.RTC, dict(privileges), (channel, rtc_uid_string(uid)))


def rtm_service(user_id: str, login_expire: int) -> Service:
    return Service(ServiceType.RTM, {RtmPrivilege.LOGIN: login_expire}, (user_id,))


def role_privileges(role: RtcRole, privilege_expire: int) -> dict[int, int]:
    granted = PUBLISHER_PRIVILEGES if role is RtcRole.PUBLISHER else SUBSCRIBER_PRIVILEGES
    return dict.fromkeys(granted, privilege_expire)


# --- encoding --------------------------------------------------------------------------------

_u16 = struct.Struct("<H").pack
_u32 = struct.Struct("<I").pack
_u32be = struct.Struct(">I").pack
_i16 = struct.Struct("<h").pack
_header = struct.Struct("<IIIH").pack  # issue_ts, expire, salt, service count
_read_u16 = struct.Struct("<H").unpack_from
_read_i16 = struct.Struct("<h").unpack_from
_read_header = struct.Struct("<IIIH").unpack_from
_read_pair = struct.Struct("<HI").unpack_from


def _pack_bytes(b: bytes) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError("string field longer than 65535 bytes")
    return _u16(len(b)) + b


def _pack_privileges(privileges: Mapping[int, int]) -> bytes:
    parts = [_u16(len(privileges))]
    for key in sorted(privileges):  # ascending key order, like every official builder
        value = privileges[key]
        if not 0 <= key <= 0xFFFF or not 0 <= value <= MAX_UINT32:
            raise ValueError("privilege id must fit u16 and its expiry u32")
        parts.append(_u16(key) + _u32(value))
    return b"".join(parts)


def _pack_service(service: Service) -> bytes:
    layout = _LAYOUTS.get(service.type)
    if layout is None:
        raise ValueError(f"cannot build service type {service.type}")
    if len(service.fields) != len(layout):
        raise ValueError(f"service type {service.type} takes {len(layout)} fields")
    parts = [_u16(service.type), _pack_privileges(service.privileges)]
    for kind, field in zip(layout, service.fields, strict=True):
        if kind == _STR:
            if not isinstance(field, str):
                raise ValueError("string field expected")
            parts.append(_pack_bytes(field.encode()))
        else:
            if isinstance(field, bool) or not isinstance(field, int) or not -0x8000 <= field < 0x8000:
                raise ValueError("i16 field expected")
            parts.append(_i16(field))
    return b"".join(parts)


def is_hex32(value: str | None) -> bool:
    """The shape of an App ID and an App Certificate."""
    return value is not None and len(value) == 32 and _HEX.issuperset(value)


def _require_hex32(value: str, what: str) -> None:
    # The value itself never goes into the message: it may be the certificate.
    if not is_hex32(value):
        raise ValueError(f"{what} must be 32 hex characters")


@lru_cache(maxsize=16)
def _packed_app_id(app_id: str) -> bytes:
    _require_hex32(app_id, "app id")
    return _pack_bytes(app_id.encode())


@lru_cache(maxsize=16)
def _checked_certificate(app_certificate: str) -> bytes:
    _require_hex32(app_certificate, "app certificate")
    return app_certificate.encode()


def _signing_info(
    app_id: str, issue_ts: int, expire: int, salt: int, services: list[bytes]
) -> bytes:
    if salt < 1:
        raise ValueError("salt must be in 1..2^32-1")
    if not services:
        raise ValueError("a token needs at least one service")
    try:
        header = _header(issue_ts, expire, salt, len(services))
    except struct.error as exc:
        raise ValueError("issue_ts, expire and salt must fit u32") from exc
    return b"".join((_packed_app_id(app_id), header, *services))


def encode_signing_info(token: AccessToken) -> bytes:
    # sorted() is stable: repeated services of one type keep their order (Tools commit 736c8e6).
    services = sorted(token.services, key=lambda s: s.type)
    return _signing_info(
        token.app_id, token.issue_ts, token.expire, token.salt, [_pack_service(s) for s in services]
    )


_IPAD: Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: Final = bytes(x ^ 0x5C for x in range(256))


def _hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """RFC 2104 HMAC-SHA256 for keys of at most 64 bytes (ours are 4 and 32 bytes).

    Same result as `hmac.digest(key, msg, "sha256")` (a property test checks it), which spends
    ~2 us per call here setting up OpenSSL 3's MAC context; two of them per token are a tenth
    of the issuing budget.
    """
    block = key.ljust(64, b"\0")
    inner = hashlib.sha256(block.translate(_IPAD) + msg).digest()
    return hashlib.sha256(block.translate(_OPAD) + inner).digest()


@lru_cache(maxsize=64)
def _k1(issue_ts: int, app_certificate: bytes) -> bytes:
    # Only changes once a second per certificate: worth caching on the issuing hot path.
    return _hmac_sha256(_u32(issue_ts), app_certificate)


def _signature(signing_info: bytes, certificate: bytes, issue_ts: int, salt: int) -> bytes:
    # Note the order: the timestamp and the salt are the HMAC *keys* (spec A.3).
    k2 = _hmac_sha256(_u32(salt), _k1(issue_ts, certificate))
    return _hmac_sha256(k2, signing_info)


def sign(signing_info: bytes, app_certificate: str, issue_ts: int, salt: int) -> bytes:
    """The AccessToken2 signature of `signing_info`."""
    return _signature(signing_info, app_certificate.encode(), issue_ts, salt)


_STORED_BLOCK_MAX: Final = 0xFFFF


def _zlib_stored(content: bytes) -> bytes:
    """`zlib.compress(content, 0)`, byte for byte (a test checks it), without zlib's set-up.

    A token payload is mostly a random signature and hex ids, so deflate saves only ~10 % of
    its length, while creating a deflate state costs 10-70 us here against a budget of 20 us
    per token. Level 0 ("stored" blocks) is a normal zlib stream that every inflater accepts;
    Go's official builder already ends its tokens with an (empty) stored block.
    """
    if len(content) > _STORED_BLOCK_MAX:
        raise ValueError("token payload larger than one stored block")
    n = len(content)
    return b"".join(
        (b"\x78\x01\x01", _u16(n), _u16(n ^ 0xFFFF), content, _u32be(zlib.adler32(content)))
    )


def _finish(signing_info: bytes, certificate: bytes, issue_ts: int, salt: int) -> str:
    signature = _signature(signing_info, certificate, issue_ts, salt)
    content = b"\x20\x00" + signature + signing_info  # string(signature): 32 bytes
    return VERSION + base64.b64encode(_zlib_stored(content)).decode("ascii")


def build(token: AccessToken, app_certificate: str) -> str:
    certificate = _checked_certificate(app_certificate)
    return _finish(encode_signing_info(token), certificate, token.issue_ts, token.salt)


@lru_cache(maxsize=64)
def _role_privileges_packed(role: RtcRole, privilege_expire: int) -> bytes:
    return _pack_privileges(role_privileges(role, privilege_expire))


def build_rtc_token(
    app_id: str,
    app_certificate: str,
    channel: str,
    uid: int | str,
    role: RtcRole,
    *,
    token_expire: int,
    privilege_expire: int,
    issue_ts: int,
    salt: int,
) -> str:
    """Like Agora's `build_token_with_uid` / `build_token_with_user_account`.

    Same bytes as `build(AccessToken(..., (rtc_service(...),)))`, packed without the generic
    per-field walk: this is the issuing hot path.
    """
    certificate = _checked_certificate(app_certificate)
    channel_bytes = channel.encode()
    uid_bytes = rtc_uid_string(uid).encode()
    if len(channel_bytes) > 0xFFFF:
        raise ValueError("channel name longer than 65535 bytes")
    service = b"".join(
        (
            b"\x01\x00",
            _role_privileges_packed(role, privilege_expire),
            _u16(len(channel_bytes)),
            channel_bytes,
            _u16(len(uid_bytes)),
            uid_bytes,
        )
    )
    return _finish(
        _signing_info(app_id, issue_ts, token_expire, salt, [service]), certificate, issue_ts, salt
    )


def build_rtm_token(
    app_id: str, app_certificate: str, user_id: str, *, expire: int, issue_ts: int, salt: int
) -> str:
    """Like Agora's `RtmTokenBuilder.build_token`: header expire and login both `expire`."""
    service = rtm_service(user_id, expire)
    return build(AccessToken(app_id, issue_ts, expire, salt, (service,)), app_certificate)


# --- parsing ---------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def bytes_(self) -> bytes:
        (n,) = _read_u16(self.buf, self.pos)
        start = self.pos + 2
        end = start + n
        if end > len(self.buf):
            raise struct.error("string runs past the end")
        self.pos = end
        return self.buf[start:end]

    def str_(self) -> str:
        return self.bytes_().decode()

    def u16(self) -> int:
        (v,) = _read_u16(self.buf, self.pos)
        self.pos += 2
        return int(v)

    def i16(self) -> int:
        (v,) = _read_i16(self.buf, self.pos)
        self.pos += 2
        return int(v)

    def header(self) -> tuple[int, int, int, int]:
        values = _read_header(self.buf, self.pos)
        self.pos += 14
        return values

    def privileges(self) -> dict[int, int]:
        count = self.u16()
        out: dict[int, int] = {}
        for _ in range(count):
            key, value = _read_pair(self.buf, self.pos)
            self.pos += 6
            out[key] = value
        return out


def _decode_base64(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TokenRejected(Reason.MALFORMED, "not base64") from exc
    # b64decode ignores the unused low bits of the last character, so two strings can decode to
    # the same bytes. Only the canonical spelling is the token.
    if base64.b64encode(raw).decode("ascii") != text:
        raise TokenRejected(Reason.MALFORMED, "non-canonical base64")
    return raw


def _inflate(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        content = inflater.decompress(compressed, MAX_PAYLOAD_BYTES)
    except zlib.error as exc:
        raise TokenRejected(Reason.MALFORMED, "not a zlib stream") from exc
    if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise TokenRejected(Reason.MALFORMED, "truncated, oversized or trailing zlib data")
    return content


def parse(token: str) -> ParsedToken:
    """Decode a 007 token without checking its signature. Raises `TokenRejected`."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected(Reason.MALFORMED, "not a token string")
    if not token.startswith(VERSION):
        raise TokenRejected(Reason.WRONG_VERSION, "only AccessToken2 (007) is supported")
    compressed = _decode_base64(token[len(VERSION) :])
    return parse_content(_inflate(compressed))


def parse_content(content: bytes) -> ParsedToken:
    reader = _Reader(content)
    try:
        signature = reader.bytes_()
        signing_info = content[reader.pos :]
        app_id = reader.str_()
        issue_ts, expire, salt, count = reader.header()
        services: list[Service] = []
        complete = True
        for _ in range(count):
            type_ = reader.u16()
            layout = _LAYOUTS.get(type_)
            if layout is None:
                # An unknown service's length cannot be known: stop, keep what we have (A.6).
                complete = False
                break
            privileges = reader.privileges()
            fields = tuple(reader.str_() if kind == _STR else reader.i16() for kind in layout)
            services.append(Service(type_, privileges, fields))
    except (struct.error, UnicodeDecodeError) as exc:
        raise TokenRejected(Reason.MALFORMED, "payload does not follow the 007 layout") from exc
    if len(signature) != 32:
        raise TokenRejected(Reason.MALFORMED, "signature must be 32 bytes")
    token = AccessToken(app_id, issue_ts, expire, salt, tuple(services))
    return ParsedToken(token, signature, signing_info, complete)


def signature_valid(parsed: ParsedToken, app_certificate: str) -> bool:
    if not is_hex32(app_certificate):
        return False
    t = parsed.token
    expected = sign(parsed.signing_info, app_certificate, t.issue_ts, t.salt)
    return hmac.compare_digest(expected, parsed.signature)


def is_canonical(token: str) -> bool:
    """True when `token` is byte for byte what this builder makes from its payload.

    Foreign encoders (other zlib builds, Go's sync flush) make different but valid strings, so
    this is only for tokens we issued ourselves. It closes the last gap of "any byte changed is
    a different token": inflate ignores the padding bits after the final deflate block.
    """
    parsed_raw = _decode_base64(token[len(VERSION) :])
    return _zlib_stored(_inflate(parsed_raw)) == parsed_raw


# --- verification ----------------------------------------------------------------------------


def verify(
    token: str,
    *,
    app_id: str,
    app_certificate: str,
    now: int,
    canonical: bool = False,
) -> ParsedToken:
    """Parse, then check app id, signature (constant time) and `now <= issue_ts + expire`.

    `canonical=True` also requires our own encoding (see `is_canonical`).
    """
    parsed = parse(token)
    t = parsed.token
    if not hmac.compare_digest(t.app_id.encode(), app_id.encode()):
        raise TokenRejected(Reason.WRONG_APP_ID, "token was issued for another app id")
    if not signature_valid(parsed, app_certificate):
        raise TokenRejected(Reason.BAD_SIGNATURE, "signature does not match")
    if canonical and not is_canonical(token):
        raise TokenRejected(Reason.MALFORMED, "not the encoding this server issues")
    if now > t.expires_at:
        raise TokenRejected(Reason.EXPIRED, f"expired at {t.expires_at}")
    return parsed


def _check_privileges(
    token: AccessToken, service: Service, required: Iterable[int], now: int
) -> None:
    for privilege in required:
        after = service.expires_after(privilege)
        if after is None:
            raise TokenRejected(Reason.MISSING_PRIVILEGE, f"privilege {int(privilege)} not granted")
        # 0 is not given a special meaning: the sources do not say what Agora does with it
        # (spec A.5), and our builder never writes it.
        if now > token.issue_ts + after:
            raise TokenRejected(Reason.PRIVILEGE_EXPIRED, f"privilege {int(privilege)} expired")


def verify_rtc(
    token: str,
    *,
    app_id: str,
    app_certificate: str,
    channel: str,
    uid: int | str,
    now: int,
    required: Iterable[int] = SUBSCRIBER_PRIVILEGES,
    canonical: bool = False,
) -> Service:
    """Everything `verify` checks, plus channel, uid and the `required` privileges.

    A token uid of '' (built for numeric uid 0) admits any uid. A joiner with numeric uid 0
    (server-assigned uid) is admitted only by such a wildcard token.
    """
    parsed = verify(
        token, app_id=app_id, app_certificate=app_certificate, now=now, canonical=canonical
    )
    service = parsed.token.service(ServiceType.RTC)
    if service is None:
        raise TokenRejected(Reason.MISSING_SERVICE, "no RTC service in token")
    token_channel, token_uid = service.fields
    if token_channel != channel:
        raise TokenRejected(Reason.WRONG_CHANNEL, "token is for another channel")
    if token_uid != "" and token_uid != rtc_uid_string(uid):
        raise TokenRejected(Reason.WRONG_UID, "token is for another uid")
    _check_privileges(parsed.token, service, required, now)
    return service


def verify_rtm(
    token: str,
    *,
    app_id: str,
    app_certificate: str,
    user_id: str,
    now: int,
    canonical: bool = False,
) -> Service:
    parsed = verify(
        token, app_id=app_id, app_certificate=app_certificate, now=now, canonical=canonical
    )
    service = parsed.token.service(ServiceType.RTM)
    if service is None:
        raise TokenRejected(Reason.MISSING_SERVICE, "no RTM service in token")
    if service.fields[0] != user_id:
        raise TokenRejected(Reason.WRONG_UID, "token is for another RTM user")
    _check_privileges(parsed.token, service, (RtmPrivilege.LOGIN,), now)
    return service


def granted_role(service: Service) -> RtcRole:
    """Publisher iff the token carries any publish privilege."""
    publish = set(PUBLISHER_PRIVILEGES) - set(SUBSCRIBER_PRIVILEGES)
    return RtcRole.PUBLISHER if publish & service.privileges.keys() else RtcRole.SUBSCRIBER
