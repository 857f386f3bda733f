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
