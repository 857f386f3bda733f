"""Server-to-client WebSocket frames (RFC 6455 §5.2), built once and shared.

Server frames are unmasked and we never negotiate permessage-deflate on the realtime endpoint, so
the bytes of a frame do not depend on the connection: the hub frames a message once and writes the
same bytes to every subscriber.
"""

from __future__ import annotations

import struct

TEXT = 0x81  # FIN + text
BINARY = 0x82  # FIN + binary


def frame(data: bytes, binary: bool = False) -> bytes:
    head = BINARY if binary else TEXT
    n = len(data)
    if n < 126:
        return bytes((head, n)) + data
    if n < 65536:
        return struct.pack("!BBH", head, 126, n) + data
    return struct.pack("!BBQ", head, 127, n) + data


CLOSE = 0x88  # FIN + close
PONG = 0x8A  # FIN + pong


def control(head: int, payload: bytes) -> bytes:
    """A close or pong frame; ``payload`` is at most 125 bytes (a control frame's limit)."""
    if len(payload) > 125:
        raise ValueError("control frame too long")
    return bytes((head, len(payload))) + payload


def close(code: int, reason: str = "") -> bytes:
    """A close frame as websockets' ``send_close`` writes it (code, then the UTF-8 reason)."""
    return control(CLOSE, code.to_bytes(2, "big") + reason.encode())
