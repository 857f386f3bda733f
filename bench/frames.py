"""CPU per received client frame of the realtime socket's read path alone, in-process; prints JSON.

The same masked text frame (a reaction tap, ~130 bytes) is fed, one frame per call as a socket
read would bring it, to:
* ``uvicorn_websockets``: uvicorn's sans-I/O WebSocket protocol on websockets' ``ServerProtocol``
  (an open connection), up to the complete message (what realtime sockets went through before
  ``RealtimeSocket``);
* ``frame_reader``: ``onair.realtime.protocol.wsreader.FrameReader`` with websockets' C unmask
  (what ``RealtimeSocket.data_received`` runs).
Neither dispatches the message: this is the frame layer's share of a tap's server CPU.

    python bench/frames.py [--frames 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.protocol import State
from websockets.speedups import apply_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from onair.realtime.protocol.wsreader import FrameReader

MASK = b"\x11\x22\x33\x44"
BODY = orjson.dumps(["1", None, "realtime:stream:0123456789abcdef", "broadcast",
                     {"type": "broadcast", "event": "react", "payload": {"kind": "heart"}}])
FRAME = bytes((0x81, 0x80 | len(BODY))) + MASK + apply_mask(BODY, MASK)


class _Transport:
    def write(self, data: bytes) -> None:
        return None

    def pause_reading(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False


async def _app(scope: Any, receive: Any, send: Any) -> None:
    return None


class Uvicorn(WebSocketsSansIOProtocol):
    messages = 0

    def send_receive_event_to_app(self) -> None:
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        bytes(data)  # what the realtime shell handed on
        Uvicorn.messages += 1


class Reader(FrameReader):
    __slots__ = ()
    unmask = staticmethod(apply_mask)
    messages = 0

    def on_message(self, data: bytes, binary: bool) -> None:
        Reader.messages += 1


def per_frame_us(feed: Callable[[bytes], Any], frames: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(frames):
            feed(FRAME)
        times.append((time.process_time() - t0) / frames * 1e6)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5, help="the figure is their median")
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    old = Uvicorn(Config(app=_app), ServerState(), {}, loop)
    old.transport = _Transport()  # type: ignore[assignment]
    old.handshake_initiated = True
    old.conn.state = State.OPEN
    old.conn.parser = old.conn.parse()  # past the handshake: frames only
    next(old.conn.parser)
    result = {
        "bench": "frames", "frame_bytes": len(FRAME),
        "uvicorn_websockets_us_per_frame": per_frame_us(old.data_received, args.frames, args.rounds),
        "frame_reader_us_per_frame": per_frame_us(Reader(1 << 20).feed, args.frames, args.rounds),
    }
    assert Uvicorn.messages == Reader.messages == args.frames * args.rounds
    loop.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
