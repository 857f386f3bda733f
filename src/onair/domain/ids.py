"""Time-ordered identifiers (UUIDv7 layout, RFC 9562) so newest-first pages sort by id."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import datetime

_RAND_BITS = 74  # 12 bits rand_a + 62 bits rand_b


class Uuid7Generator:
    """Strictly increasing UUIDv7s: within one millisecond (or a clock step back) the random
    part is incremented, as RFC 9562 §6.2 method 2 allows, so creation order is id order."""

    def __init__(self, entropy: Callable[[int], bytes] = os.urandom) -> None:
        self._entropy = entropy
        self._last = 0  # (ms << 74) | random, before version/variant bits are placed

    def __call__(self, at: datetime) -> str:
        ms = int(at.timestamp() * 1000) & ((1 << 48) - 1)
        candidate = (ms << _RAND_BITS) | (int.from_bytes(self._entropy(10), "big")
                                         & ((1 << _RAND_BITS) - 1))
        if candidate <= self._last:
            candidate = self._last + 1
        self._last = candidate
        ms_part, rand = candidate >> _RAND_BITS, candidate & ((1 << _RAND_BITS) - 1)
        value = (ms_part << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0x2 << 62) \
            | (rand & ((1 << 62) - 1))
        return str(uuid.UUID(int=value))


uuid7 = Uuid7Generator()


def is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except (ValueError, AttributeError, TypeError):
        return False
