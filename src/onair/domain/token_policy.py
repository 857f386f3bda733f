"""Who gets which Agora token, for how long, and when to renew it. Pure rules, no I/O.

The roles come from stream facts only (seller, co-host list, status), never from the request,
so no request shape can talk a buyer into a publisher token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from onair.domain.accesstoken2 import MAX_SALT, MAX_UINT32, RtcRole

AGORA_MAX_TTL: Final = 86_400  # Agora rejects tokens valid for longer than 24 h
MAX_UID: Final = 2**31 - 1  # some native SDKs keep uids in a signed int32


class TokenRole(StrEnum):
    PUBLISHER = "publisher"
    SUBSCRIBER = "subscriber"
    RTM = "rtm"

    @property
    def rtc(self) -> RtcRole:
        return RtcRole.PUBLISHER if self is TokenRole.PUBLISHER else RtcRole.SUBSCRIBER


def entitled_role(user_id: str, seller_id: str, is_cohost: bool) -> TokenRole:
    """Publisher for the stream's seller and its invited co-hosts, subscriber for everyone else."""
    return TokenRole.PUBLISHER if user_id == seller_id or is_cohost else TokenRole.SUBSCRIBER


def granted_role(entitled: TokenRole, requested: TokenRole | None) -> TokenRole | None:
    """The role to issue, or None when the caller asked for more than they are entitled to.

    Anyone may ask for less (a seller previewing as a viewer); nobody gets more.
    """
    if requested is None or requested is entitled:
        return entitled
    if requested is TokenRole.SUBSCRIBER:
        return TokenRole.SUBSCRIBER
    return None


def channel_name(prefix: str, stream_id: str) -> str:
    """The Agora channel of a stream: derived from the stream, never from the client."""
    return prefix + stream_id


@dataclass(frozen=True, slots=True)
class Lifetimes:
    token_ttl: int
    privilege_ttl: int
    refresh_fraction: float
    refresh_margin: int

    def __post_init__(self) -> None:
        if not 1 <= self.token_ttl <= AGORA_MAX_TTL:
            raise ValueError("token lifetime must be within 1 s .. 24 h")
        if self.privilege_ttl < 1 or not 0 < self.refresh_fraction <= 1 or self.refresh_margin < 0:
            raise ValueError("invalid privilege lifetime or refresh rule")


@dataclass(frozen=True, slots=True)
class Schedule:
    """Unix seconds, all computed from the server's issue time."""

    issued_at: int
    token_expire: int  # seconds after issued_at (the token header)
    privilege_expire: int  # seconds after issued_at (every privilege), <= token_expire
    refresh_after: int  # absolute: when the client should fetch a new token

    @property
    def expires_at(self) -> int:
        """When the token stops being useful: its first privilege or the token itself ends."""
        return self.issued_at + self.privilege_expire


def schedule(issued_at: int, lifetimes: Lifetimes) -> Schedule:
    """Refresh at `refresh_fraction` of the lifetime, and at the latest `refresh_margin` s
    before expiry (Agora's will-expire warning comes 30 s before), never before issue."""
    token_expire = lifetimes.token_ttl
    privilege_expire = min(lifetimes.privilege_ttl, token_expire)
    by_fraction = math.floor(privilege_expire * lifetimes.refresh_fraction)
    by_margin = privilege_expire - lifetimes.refresh_margin
    refresh_in = max(0, min(by_fraction, by_margin))
    return Schedule(issued_at, token_expire, privilege_expire, issued_at + refresh_in)


class SaltSequence:
    """Salts 1..99,999,999 that do not repeat within one process for 10^8 tokens.

    A random start keeps processes apart; stepping by one (mod the range) means two tokens of
    one process never share a salt, which random draws would (1,000 draws: ~0.5 % chance).
    """

    __slots__ = ("_next",)

    def __init__(self, start: int) -> None:
        if not 1 <= start <= MAX_SALT:
            raise ValueError("salt start must be in 1..99999999")
        self._next = start

    def __call__(self) -> int:
        salt = self._next
        self._next = salt % MAX_SALT + 1
        return salt


def valid_uid(uid: int) -> bool:
    return 1 <= uid <= min(MAX_UID, MAX_UINT32)
