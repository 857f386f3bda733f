"""Re-export of the caller identity for the API layers."""

from onair.domain.identity import STAFF, Principal, Role

__all__ = ["STAFF", "Principal", "Role"]
