"""Who is asking: the caller's identity as the rest of onair sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    ANON = "anon"  # the anon key: not signed in
    BUYER = "buyer"
    SELLER = "seller"
    MODERATOR = "moderator"
    ADMIN = "admin"
    SERVICE = "service"  # the service_role key: trusted back ends

    @classmethod
    def parse(cls, value: object, default: Role) -> Role:
        try:
            return cls(str(value).lower())
        except ValueError:
            return default


STAFF = frozenset({Role.MODERATOR, Role.ADMIN, Role.SERVICE})


@dataclass(frozen=True)
class Principal:
    user_id: str | None
    role: Role
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    @property
    def is_signed_in(self) -> bool:
        return self.user_id is not None and self.role is not Role.ANON
