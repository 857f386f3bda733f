"""CPU per received client frame of the realtime socket's read path alone, in-process; prints JSON.

The same masked text frame (a reaction tap, ~130 bytes) is fed, one frame per call as a socket
read would bring it, to:
* ``uvicorn_websockets``: uvicorn's sans-I/O WebSocket protocol on websockets' ``ServerProtocol``
  (an open connection), up to the complete message (what realtime sockets went through before
  ``RealtimeSocket``);
* ``frame_reader``: ``onair.realtime.protocol.wsreader.FrameReader`` with websockets' C unmask
  (what ``RealtimeSocket.data_received`` runs).
Neither dispatches the message: this is the frame layer's share of a tap's server CPU.

``tap_path``: the whole server-side Python of a tap, in-process: a real app context (SQLite in a
temporary directory) with a live stream, ``--viewers`` signed-in viewers joined to its channel
through ``RealtimeSocket`` on transports that discard what they are given, and then every viewer's
taps fed to ``RealtimeSocket.data_received`` in turn — frame reader, Phoenix decode, dispatch,
stream policy, ``ReactionService.tap``. No syscalls and no event-loop turn per tap, so this is the
Python part of ``bench/reactions.py``'s CPU per tap, apart from the kernel and the machine's load.

    python bench/frames.py [--frames 200000] [--rounds 5] [--viewers 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
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


class _Discard(_Transport):
    def resume_reading(self) -> None:
        return None

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None

    def get_write_buffer_size(self) -> int:
        return 0


def client_frame(body: bytes) -> bytes:
    """A masked text frame of any length (the client's side of RFC 6455)."""
    n = len(body)
    head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + MASK + apply_mask(body, MASK)


async def tap_path_us(viewers: int, rounds: int, taps_per_viewer: int = 10) -> dict[str, Any]:
    from onair.app import build_context, start_context, stop_context
    from onair.auth.jwt import mint_token
    from onair.domain.identity import Principal, Role
    from onair.domain.streams import Action
    from onair.realtime.protocol.serializer import serializer_for
    from onair.realtime.websocket import RealtimeSocket
    from onair.settings import Settings

    secret = "frames-bench-" + "x" * 40
    with tempfile.TemporaryDirectory() as tmp:
        # the per-user limit is raised so that every tap is counted, as at 1 tap/s in the storm
        ctx = build_context(Settings(_env_file=None, data_dir=Path(tmp), jwt_secret=secret, reaper_interval=3600,
                                     log_level="warning", reactions_per_second=100, reactions_burst=1000,
                                     realtime_max_connections_per_ip=viewers + 1))
        await start_context(ctx, reaper=False)
        try:
            seller = Principal("bench-seller", Role.SELLER)
            stream = await ctx.streams.create(seller, "frames")
            await ctx.streams.act(seller, stream.id, Action.START)
            service = ctx.realtime
            assert service is not None and ctx.reactions is not None
            topic = f"realtime:stream:{stream.id}"
            sockets = []
            for i in range(viewers):
                token = mint_token(secret, f"viewer-{i}", "buyer", 7200)
                transport = _Discard()
                sock = RealtimeSocket(transport, service, 1 << 20, set(), set())  # type: ignore[arg-type]
                info = service.authenticate(token, "127.0.0.1")
                sock.client = service.attach(transport, serializer_for("2.0.0"), info, sock.close_from_hub)  # type: ignore[arg-type]
                config = {"config": {"presence": {"enabled": False}}, "access_token": token}
                sock.data_received(client_frame(orjson.dumps(["1", "1", topic, "phx_join", config])))
                sockets.append(sock)
            deadline = time.monotonic() + 60
            while any(sock.busy for sock in sockets) or len(service.hub.members_of(topic)) < viewers:
                assert time.monotonic() < deadline, f"{len(service.hub.members_of(topic))} of {viewers} viewers joined"
                await asyncio.sleep(0.01)
            frames = [client_frame(orjson.dumps(["1", None, topic, "broadcast",
                                                 {"type": "broadcast", "event": "react", "payload": {"kind": kind}}]))
                      for kind in ("heart", "fire", "laugh", "wow")]
            accepted0 = ctx.reactions.outcomes["accepted"]
            times = []
            for _ in range(rounds):
                t0 = time.process_time()
                for rep in range(taps_per_viewer):
                    for j, sock in enumerate(sockets):
                        sock.data_received(frames[(j + rep) & 3])
                times.append((time.process_time() - t0) / (taps_per_viewer * viewers) * 1e6)
                await asyncio.sleep(0.3)  # windows close; aggregates go to the discarding transports
            counted = ctx.reactions.outcomes["accepted"] - accepted0
            assert counted == rounds * taps_per_viewer * viewers, (counted, "taps not counted")
            return {"tap_path_us_per_tap": round(statistics.median(times), 2),
                    "tap_path_us_each_round": [round(t, 2) for t in times], "tap_path_viewers": viewers}
        finally:
            await stop_context(ctx)


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
    parser.add_argument("--viewers", type=int, default=500, help="joined viewers tapping in the tap path")
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
    result.update(asyncio.run(tap_path_us(args.viewers, args.rounds)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
