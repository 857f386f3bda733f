"""The realtime socket's frame reader (realtime/protocol/wsreader.py): a golden table of client
frames → events, and a differential property against websockets' own sans-I/O parser."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.speedups import apply_mask

from onair.realtime.protocol import wsframe
from onair.realtime.protocol.wsreader import FrameReader, unmask

MASK = b"\x37\xfa\x21\x3d"
MAX = 300


def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True,
          mask: bytes = MASK, wide: int = 0) -> bytes:
    """A client frame; ``wide`` forces the 16-bit (1) or 64-bit (2) length form."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if masked else 0
    if n < 126 and not wide:
        head = bytes((b0, m | n))
    elif n < 65536 and wide != 2:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not masked:
        return head + payload
    return head + mask + apply_mask(payload, mask)


class Recorder(FrameReader):
    __slots__ = ("events",)

    def __init__(self, max_size: int = MAX) -> None:
        super().__init__(max_size)
        self.events: list[tuple[Any, ...]] = []

    def on_message(self, data: bytes, binary: bool) -> None:
        self.events.append(("binary" if binary else "text", data))

    def on_ping(self, payload: bytes) -> None:
        self.events.append(("ping", payload))

    def on_pong(self, payload: bytes) -> None:
        self.events.append(("pong", payload))

    def on_close(self, code: int, reason: str, payload: bytes) -> None:
        self.events.append(("close", code, reason))

    def on_error(self, code: int, reason: str) -> None:
        self.events.append(("error", code, reason))


class FastRecorder(Recorder):
    __slots__ = ()
    unmask = staticmethod(apply_mask)


def read(data: bytes, chunks: list[int] | None = None, cls: type[Recorder] = Recorder) -> list[tuple[Any, ...]]:
    reader = cls()
    pos = 0
    for size in chunks or [len(data)]:
        reader.feed(data[pos:pos + size])
        pos += size
    if pos < len(data):
        reader.feed(data[pos:])
    return reader.events


TOO_BIG = f"frame with {MAX + 1} bytes exceeds limit of {MAX} bytes"
GOLDEN: list[tuple[str, bytes, list[tuple[Any, ...]]]] = [
    ("text", frame(1, b"hello"), [("text", b"hello")]),
    ("binary", frame(2, b"\x00\xff"), [("binary", b"\x00\xff")]),
    ("empty text", frame(1, b""), [("text", b"")]),
    ("utf-8 text", frame(1, "héllo ✓".encode()), [("text", "héllo ✓".encode())]),
    ("two frames", frame(1, b"a") + frame(2, b"b"), [("text", b"a"), ("binary", b"b")]),
    ("16-bit length", frame(1, b"x" * 200), [("text", b"x" * 200)]),
    ("16-bit form, short", frame(1, b"ab", wide=1), [("text", b"ab")]),
    ("64-bit form", frame(2, b"xy", wide=2), [("binary", b"xy")]),
    ("fragments", frame(1, b"he", fin=False) + frame(0, b"ll", fin=False) + frame(0, b"o"),
     [("text", b"hello")]),
    ("ping between fragments", frame(2, b"a", fin=False) + frame(9, b"p") + frame(0, b"b"),
     [("ping", b"p"), ("binary", b"ab")]),
    ("ping", frame(9, b"are you there"), [("ping", b"are you there")]),
    ("pong", frame(10, b"x"), [("pong", b"x")]),
    ("close 1000", frame(8, b"\x03\xe8bye"), [("close", 1000, "bye")]),
    ("empty close", frame(8, b""), [("close", 1005, "")]),
    ("close 4000", frame(8, b"\x0f\xa0"), [("close", 4000, "")]),
    ("nothing after close", frame(8, b"\x03\xe8") + frame(1, b"late"), [("close", 1000, "")]),
    ("unmasked", frame(1, b"hi", masked=False), [("error", 1002, "incorrect masking")]),
    ("rsv1", frame(1, b"hi", rsv=4), [("error", 1002, "reserved bits must be 0")]),
    ("rsv3", frame(1, b"hi", rsv=1), [("error", 1002, "reserved bits must be 0")]),
    ("opcode 3", frame(3, b""), [("error", 1002, "invalid opcode")]),
    ("opcode 11", frame(11, b""), [("error", 1002, "invalid opcode")]),
    ("lone continuation", frame(0, b"x"), [("error", 1002, "unexpected continuation frame")]),
    ("text inside a message", frame(1, b"a", fin=False) + frame(1, b"b"),
     [("error", 1002, "expected a continuation frame")]),
    ("fragmented ping", frame(9, b"p", fin=False), [("error", 1002, "fragmented control frame")]),
    ("long ping", frame(9, b"p" * 126), [("error", 1002, "control frame too long")]),
    ("close too short", frame(8, b"\x03"), [("error", 1002, "close frame too short")]),
    ("close 1005 sent", frame(8, b"\x03\xed"), [("error", 1002, "invalid status code")]),
    ("close 999", frame(8, b"\x03\xe7"), [("error", 1002, "invalid status code")]),
    ("close bad utf-8", frame(8, b"\x03\xe8\xff"), [("error", 1007, "invalid start byte at position 0")]),
    ("close inside a message", frame(1, b"a", fin=False) + frame(8, b"\x03\xe8"),
     [("error", 1002, "incomplete fragmented message")]),
    ("bad utf-8 text", frame(1, b"ok\xc3("), [("error", 1007, "invalid continuation byte at position 2")]),
    ("utf-8 split over fragments", frame(1, b"\xc3", fin=False) + frame(0, b"\xa9"), [("text", "é".encode())]),
    ("bad utf-8 binary is fine", frame(2, b"\xc3("), [("binary", b"\xc3(")]),
    ("at the limit", frame(2, b"x" * MAX), [("binary", b"x" * MAX)]),
    ("over the limit", frame(2, b"x" * (MAX + 1)), [("error", 1009, TOO_BIG)]),
    ("over the limit in fragments", frame(2, b"x" * 200, fin=False) + frame(0, b"x" * 101),
     [("error", 1009, f"frame with 101 bytes after reading 200 bytes exceeds limit of {MAX} bytes")]),
    ("events before an error", frame(1, b"a") + frame(9, b"") + frame(1, b"b", masked=False),
     [("text", b"a"), ("ping", b""), ("error", 1002, "incorrect masking")]),
]


@pytest.mark.parametrize(("name", "data", "events"), GOLDEN, ids=[g[0] for g in GOLDEN])
@pytest.mark.parametrize("cls", [Recorder, FastRecorder], ids=["pure-python mask", "websockets mask"])
def test_golden_frames(name: str, data: bytes, events: list[tuple[Any, ...]], cls: type[Recorder]) -> None:
    assert read(data, cls=cls) == events
    assert read(data, [1] * len(data), cls=cls) == events  # one byte at a time
    assert reference(data, [len(data)]) == events  # websockets agrees


def test_an_oversize_frame_fails_on_its_header_alone() -> None:
    """A 1 GB frame is refused before any of its payload is read (nothing is buffered)."""
    head = frame(2, b"", wide=2)[:2] + struct.pack("!Q", 1 << 30) + MASK
    reader = Recorder()
    reader.feed(head)
    assert reader.events == [("error", 1009, f"frame with {1 << 30} bytes exceeds limit of {MAX} bytes")]


def test_a_large_frame_in_small_reads_is_buffered_once() -> None:
    reader = Recorder(max_size=1 << 20)
    data = frame(2, bytes(range(256)) * 2048)
    for i in range(0, len(data), 1000):
        reader.feed(data[i:i + 1000])
    assert reader.events == [("binary", bytes(range(256)) * 2048)]


def test_the_python_mask_is_websockets_mask() -> None:
    for n in (0, 1, 3, 4, 5, 17, 1000):
        data = bytes((i * 7) & 0xFF for i in range(n))
        assert unmask(data, MASK) == apply_mask(data, MASK)


def test_server_frames() -> None:
    assert wsframe.close(1012) == b"\x88\x02\x03\xf4"
    assert wsframe.close(1009, "too big") == b"\x88\x09\x03\xf1too big"
    assert wsframe.control(wsframe.PONG, b"hi") == b"\x8a\x02hi"
    with pytest.raises(ValueError):
        wsframe.control(wsframe.PONG, b"x" * 126)


# --- differential: the same bytes through websockets' ServerProtocol --------------------------------


def reference(data: bytes, chunks: list[int]) -> list[tuple[Any, ...]]:
    """What websockets' sans-I/O server protocol (an open connection, no extensions) reads from
    ``data``, as the reader's events; text checked as UTF-8 when complete, as uvicorn does."""
    proto = Protocol(Side.SERVER, state=State.OPEN, max_size=MAX)
    events: list[tuple[Any, ...]] = []
    parts: list[bytes] = []
    kind = ""
    pos = 0
    for size in [*chunks, len(data)]:
        proto.receive_data(data[pos:pos + size])
        pos += size
        for ev in proto.events_received():
            assert isinstance(ev, Frame)
            if ev.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                if ev.opcode is not Opcode.CONT:
                    kind, parts = ("text" if ev.opcode is Opcode.TEXT else "binary"), []
                parts.append(bytes(ev.data))
                if ev.fin:
                    message = b"".join(parts)
                    if kind == "text":
                        try:
                            message.decode()
                        except UnicodeDecodeError as exc:
                            return [*events, ("error", 1007, f"{exc.reason} at position {exc.start}")]
                    events.append((kind, message))
            elif ev.opcode is Opcode.PING:
                events.append(("ping", bytes(ev.data)))
            elif ev.opcode is Opcode.PONG:
                events.append(("pong", bytes(ev.data)))
            else:
                assert proto.close_rcvd is not None
                return [*events, ("close", proto.close_rcvd.code, proto.close_rcvd.reason)]
        if proto.parser_exc is not None:
            assert proto.close_sent is not None
            return [*events, ("error", proto.close_sent.code, proto.close_sent.reason)]
        if pos >= len(data):
            break
    return events


CONTROL_OPCODES = st.sampled_from([8, 9, 10])
payloads = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=30).map(str.encode),
    st.binary(min_size=100, max_size=MAX + 20),
    st.sampled_from([b"\xc3", b"\xa9", b"\xff", b"\xed\xa0\x80", "✓".encode()]),  # split or bad UTF-8
)
close_payloads = st.one_of(
    st.just(b""), st.binary(max_size=1),
    st.tuples(st.sampled_from([1000, 1001, 1005, 1006, 1011, 1012, 1015, 2999, 3000, 4999, 5000]),
              st.text(max_size=20)).map(lambda t: struct.pack("!H", t[0]) + t[1].encode()),
    st.binary(min_size=2, max_size=10),
)


@st.composite
def client_stream(draw: st.DrawFn) -> bytes:
    """Messages cut into random fragments with control frames among them; now and then a frame
    that breaks a rule (reserved bits, opcode, masking, order)."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        opcode = draw(st.sampled_from([1, 2]))
        body = draw(st.one_of(st.text(max_size=120).map(str.encode), payloads) if opcode == 1 else payloads)
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        for i, piece in enumerate(pieces):
            code = opcode if i == 0 else 0
            fin = i == len(pieces) - 1
            rsv = draw(st.sampled_from([0] * 80 + [1, 2, 4]))
            masked = draw(st.sampled_from([True] * 80 + [False]))
            if draw(st.integers(0, 80)) == 0:
                code = draw(st.sampled_from([0, 1, 2, 3, 7, 11, 15]))
            wide = draw(st.sampled_from([0] * 8 + [1, 2]))
            mask = draw(st.binary(min_size=4, max_size=4))
            out.append(frame(code, piece, fin, rsv, masked, mask, wide))
            if draw(st.integers(0, 4)) == 0:
                control = draw(CONTROL_OPCODES)
                body_c = draw(close_payloads if control == 8 else st.binary(max_size=130))
                out.append(frame(control, body_c, draw(st.sampled_from([True] * 10 + [False])), mask=mask))
    return b"".join(out)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=client_stream(), cuts=st.lists(st.integers(1, 64), max_size=12))
def test_same_events_as_websockets(data: bytes, cuts: list[int]) -> None:
    """Property 8 (realtime connection management), the frame layer: for any client byte stream,
    cut into any reads, the reader gives websockets' messages, pings, pongs and close codes."""
    expected = reference(data, cuts)
    assert read(data, cuts) == expected
    assert read(data, cuts, cls=FastRecorder) == expected
