"""One accepted realtime socket, after the handshake: frames in, the hub's bytes out.

uvicorn's WebSocket protocol object and websockets' ``ServerProtocol`` do the HTTP upgrade
(realtime/server.py); then the transport is handed to a :class:`RealtimeSocket`, which holds only
the transport, the hub's :class:`~onair.realtime.client.Client` and an incomplete frame, and reads
frames with :class:`~onair.realtime.protocol.wsreader.FrameReader`. Writes do not pass through
here at all: the hub writes its shared, pre-framed bytes to ``transport.write``.

Why: an idle connection kept the two libraries' per-connection objects (a parser generator, a
stream reader, a protocol with its ASGI state, ~3 KB) and every frame went through them (a
generator step per field, a ``Frame`` object, an event list, three dispatch methods): most of the
server's CPU per reaction tap. What remains here is what the realtime endpoint needs: masked
client frames, fragments, ping → pong, the close handshake (with a timeout), the size limit
(1009) and UTF-8 text (1007).

uvicorn keeps each connection's protocol object in ``server_state.connections`` and calls its
``shutdown()`` on SIGTERM: the socket takes that place, so a stopping server closes it with 1012
"service restart" (every Supabase client reconnects and rejoins on it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from onair.logs import log_failure
from onair.realtime.client import Client
from onair.realtime.protocol import wsframe
from onair.realtime.protocol.wsreader import FrameReader
from onair.realtime.service import RealtimeService

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

log = logging.getLogger("onair.realtime")

SERVICE_RESTART = 1012
CLOSE_TIMEOUT = 10.0  # seconds the peer has to answer our close frame (uvicorn's close_timeout)


class RealtimeSocket(FrameReader, asyncio.Protocol):
    __slots__ = ("__weakref__", "backlog", "busy", "client", "close_sent", "close_timer", "connections",
                 "realtime", "tasks", "transport")

    unmask = staticmethod(apply_mask)

    def __init__(self, transport: asyncio.Transport, realtime: RealtimeService, max_size: int,
                 connections: set[Any], tasks: set[asyncio.Task[None]]) -> None:
        super().__init__(max_size)
        self.transport = transport
        self.realtime: RealtimeService | None = realtime
        self.connections = connections  # uvicorn's server_state.connections: shutdown() reaches us
        self.tasks = tasks  # uvicorn's server_state.tasks: a graceful stop waits for a pending join
        self.client: Client | None = None
        self.busy = False  # a join or token refresh is pending: frames wait in ``backlog``
        self.backlog: list[tuple[bytes, bool]] | None = None
        self.close_sent = False
        self.close_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def eof_received(self) -> None:
        return None  # the transport closes itself; connection_lost follows

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_writing()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._detach()
        self.connections.discard(self)
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        self.backlog = None
        if exc is None:
            self.transport.close()

    # -- uvicorn's server -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """The server is stopping (SIGTERM): close with 1012 "service restart", on which
        realtime-js, realtime-py and our client reconnect and rejoin (a channel ``system`` error
        would not do: realtime-js does not rejoin after one). The hub lets go first, so no frame
        of it follows the close frame."""
        self._detach()
        if not self.close_sent:
            self.close_sent = True
            self.transport.write(wsframe.close(SERVICE_RESTART))
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        self.transport.close()

    # -- frames (FrameReader hooks) ---------------------------------------------------------------

    def on_message(self, data: bytes, binary: bool) -> None:
        if self.busy:
            if self.backlog is None:
                self.backlog = []
            self.backlog.append((data, binary))
            return
        self._feed(data, binary)

    def on_ping(self, payload: bytes) -> None:
        if not self.close_sent:
            self.transport.write(wsframe.control(wsframe.PONG, payload))

    def on_close(self, code: int, reason: str, payload: bytes) -> None:
        self._detach()
        if self.close_sent:  # the peer answered our close frame: the handshake is complete
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
        else:  # echo the peer's close frame as received (an empty one stays empty: 1005 is no code)
            self.close_sent = True
            self.transport.write(wsframe.control(wsframe.CLOSE, payload))
        self.transport.close()  # a server closes the TCP connection first (RFC 6455 §7.1.1)

    def on_error(self, code: int, reason: str) -> None:
        self._detach()
        if not self.close_sent:
            self.close_sent = True
            self.transport.write(wsframe.close(code, reason))
        self.transport.close()

    # -- the hub ----------------------------------------------------------------------------------

    def close_from_hub(self, code: int, reason: str) -> None:
        """The hub cut this connection off: close frame, then the socket (abort if too slow)."""
        if self.transport.is_closing():
            return
        if code >= 4000:
            self.transport.abort()
            return
        if not self.close_sent:
            self.close_sent = True
            self.transport.write(wsframe.close(code, reason))
        if self.close_timer is None:
            self.close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.transport.close)

    def _feed(self, data: bytes, binary: bool) -> None:
        realtime, client = self.realtime, self.client
        if realtime is None or client is None:
            return
        pending = realtime.receive(client, data, binary)
        if pending is not None:
            self.busy = True
            self.transport.pause_reading()
            task = asyncio.get_running_loop().create_task(self._finish(pending, realtime, client))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _finish(self, pending: Any, realtime: RealtimeService, client: Client) -> None:
        try:
            await pending
        except Exception as exc:
            log_failure(log, "realtime: join or token refresh failed", exc=exc)
        finally:
            self.busy = False
        if client.closed:
            return
        realtime.hub.send_protocol_output(client)
        if not self.transport.is_closing():
            self.transport.resume_reading()
        while self.backlog and not self.busy and not client.closed:
            data, binary = self.backlog.pop(0)
            self._feed(data, binary)

    def _detach(self) -> None:
        """Leave the hub. The handle and this object point at each other (closer, transport):
        parting here frees a closed connection by reference counting (gc.freeze() makes full
        collections rare)."""
        client, realtime = self.client, self.realtime
        self.client = self.realtime = None
        if client is not None and realtime is not None:
            realtime.detach(client)
