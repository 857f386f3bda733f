"""Client-to-server WebSocket frames (RFC 6455 §5), read for one accepted realtime socket.

The realtime endpoint negotiates no extension and only ever reads a client's frames, so this is
the server half of the frame layer and nothing more: masked frames, no reserved bits, data frames
reassembled from their fragments, control frames answered by the shell. It gives the same
messages and the same close codes as websockets' ``ServerProtocol`` fed the same bytes (checked by
a differential property test), with a text message's UTF-8 checked when it is complete
(1007, as uvicorn does). Errors are found in the order websockets finds them: opcode, masking,
size (before the payload is read, so an oversize frame is never buffered), then, with the whole
frame in hand, reserved bits and control-frame rules.

Sans-I/O: :meth:`FrameReader.feed` takes bytes as they come off the socket and calls the
``on_*`` hooks; a subclass (the shell) answers. After ``on_close`` or ``on_error`` it reads
nothing more.
"""

from __future__ import annotations

from collections.abc import Callable

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_OPCODES = frozenset((CONT, TEXT, BINARY, CLOSE, PING, PONG))
NO_STATUS = 1005
PROTOCOL_ERROR, INVALID_DATA, MESSAGE_TOO_BIG = 1002, 1007, 1009
# codes a peer may send in a close frame (RFC 6455 §7.4, as websockets accepts them)
CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))


class FrameError(Exception):
    """The peer broke the framing rules: the connection fails with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask (pure Python; the shell uses websockets' C version)."""
    n = len(data)
    key = (bytes(mask) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def _invalid_utf8(exc: UnicodeDecodeError) -> FrameError:
    return FrameError(INVALID_DATA, f"{exc.reason} at position {exc.start}")


class FrameReader:
    __slots__ = ("_binary", "_buf", "_done", "_need", "_parts", "_size", "max_size")

    unmask: Callable[[bytes, bytes], bytes] = staticmethod(unmask)  # bytearray slices too

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf: bytes | bytearray = b""  # an incomplete frame
        self._need = 0  # bytes the incomplete frame needs in all, when known
        self._parts: list[bytes] | None = None  # fragments of the message in progress
        self._size = 0  # their length
        self._binary = False
        self._done = False

    # -- hooks (the shell overrides them) ---------------------------------------------------------

    def on_message(self, data: bytes, binary: bool) -> None:
        raise NotImplementedError

    def on_ping(self, payload: bytes) -> None:
        raise NotImplementedError

    def on_pong(self, payload: bytes) -> None:
        return None

    def on_close(self, code: int, reason: str, payload: bytes) -> None:
        """The peer's close frame (``payload`` as received, to echo; 1005 when it was empty)."""
        raise NotImplementedError

    def on_error(self, code: int, reason: str) -> None:
        raise NotImplementedError

    # -- input ------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._done:
            return
        buf = self._buf
        if buf:
            if isinstance(buf, bytes):
                buf = self._buf = bytearray(buf)
            buf += data
            if len(buf) < self._need:
                return
            data = buf  # type: ignore[assignment]
        try:
            pos = self._parse(data)
        except FrameError as exc:
            self._done = True
            self._buf = b""
            self._parts = None
            self.on_error(exc.code, exc.reason)
            return
        if self._done:
            self._buf = b""
        elif pos == len(data):
            self._buf = b""
            self._need = 0
        elif pos:
            self._buf = bytearray(data[pos:])
        else:
            self._buf = data

    def _parse(self, data: bytes) -> int:
        """Handle every complete frame in ``data``; returns where the incomplete rest starts."""
        n = len(data)
        pos = 0
        while not self._done:
            avail = n - pos
            if avail < 2:
                self._need = 2
                return pos
            b0 = data[pos]
            b1 = data[pos + 1]
            opcode = b0 & 0x0F
            if opcode not in _OPCODES:
                raise FrameError(PROTOCOL_ERROR, "invalid opcode")
            if not b1 & 0x80:
                raise FrameError(PROTOCOL_ERROR, "incorrect masking")
            length = b1 & 0x7F
            if length < 126:
                head = pos + 6
            elif length == 126:
                if avail < 4:
                    self._need = 4
                    return pos
                length = (data[pos + 2] << 8) | data[pos + 3]
                head = pos + 8
            else:
                if avail < 10:
                    self._need = 10
                    return pos
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = pos + 14
            parts = self._parts
            limit = self.max_size if parts is None else self.max_size - self._size
            if length > limit:
                after = "" if parts is None else f"after reading {self._size} bytes "
                raise FrameError(MESSAGE_TOO_BIG,
                                 f"frame with {length} bytes {after}exceeds limit of {self.max_size} bytes")
            end = head + length
            if end > n:
                self._need = end - pos
                return pos
            payload = self.unmask(data[head:end], data[head - 4 : head])
            pos = end
            if b0 & 0x70:
                raise FrameError(PROTOCOL_ERROR, "reserved bits must be 0")
            fin = b0 & 0x80
            if opcode in (TEXT, BINARY):
                if parts is not None:
                    raise FrameError(PROTOCOL_ERROR, "expected a continuation frame")
                if fin:
                    self._message(payload, opcode == BINARY)
                else:
                    self._parts = [payload]
                    self._size = length
                    self._binary = opcode == BINARY
            elif opcode == CONT:
                if parts is None:
                    raise FrameError(PROTOCOL_ERROR, "unexpected continuation frame")
                parts.append(payload)
                if fin:
                    self._parts = None
                    self._size = 0
                    self._message(b"".join(parts), self._binary)
                else:
                    self._size += length
            else:
                if length > 125:
                    raise FrameError(PROTOCOL_ERROR, "control frame too long")
                if not fin:
                    raise FrameError(PROTOCOL_ERROR, "fragmented control frame")
                if opcode == PING:
                    self.on_ping(payload)
                elif opcode == PONG:
                    self.on_pong(payload)
                else:
                    self._close(payload)
        return pos

    def _message(self, data: bytes, binary: bool) -> None:
        if not binary and not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                raise _invalid_utf8(exc) from None
        self.on_message(data, binary)

    def _close(self, payload: bytes) -> None:
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError as exc:
                raise _invalid_utf8(exc) from None
            if not (code in CLOSE_CODES or 3000 <= code < 5000):
                raise FrameError(PROTOCOL_ERROR, "invalid status code")
        elif not payload:
            code, reason = NO_STATUS, ""
        else:
            raise FrameError(PROTOCOL_ERROR, "close frame too short")
        if self._parts is not None:
            raise FrameError(PROTOCOL_ERROR, "incomplete fragmented message")
        self._done = True
        self.on_close(code, reason, payload)
