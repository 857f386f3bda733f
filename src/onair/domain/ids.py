"""Time-ordered identifiers (UUIDv7 layout, RFC 9562) so newest-first pages sort by id."""

from __future__ import annotations

import os
import uuid
from datetime import datetime


def uuid7(at: datetime, entropy: bytes | None = None) -> str:
    """A UUIDv7 string for ``at``; ``entropy`` (10 bytes) makes it deterministic in tests."""

    ms = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(entropy if entropy is not None else os.urandom(10), "big")
    value = (ms << 80) | (rand & ((1 << 80) - 1))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except (ValueError, AttributeError, TypeError):
        return False
