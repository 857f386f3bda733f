"""The WebSocket shell: a uvicorn protocol class that hands ``/realtime/v1/websocket`` to the hub.

Why not an ASGI endpoint: ASGI makes every outgoing frame an awaited ``send()`` per connection
(an event dict, a coroutine, websockets framing, a write), which is the per-delivery cost the hub is
built to avoid. uvicorn lets the server choose its WebSocket protocol class (``ws=``), so this class
owns the transport of realtime connections: frames come from websockets' sans-I/O
``ServerProtocol`` (handshake, parsing, masking, ping/pong, close), and the hub writes its shared,
pre-framed bytes straight to ``transport.write``. Every other WebSocket path still goes to the ASGI
app through uvicorn's own implementation, which this class extends.

permessage-deflate is never negotiated here: compressed frames would differ per connection and
could not be shared.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from onair.logs import log_failure
from onair.realtime.client import Client
from onair.realtime.dispatcher import TokenRejected
from onair.realtime.protocol.serializer import serializer_for
from onair.realtime.service import PATH, STATE_KEY, RealtimeService

log = logging.getLogger("onair.realtime")


class _Unused:
    """Stands in for uvicorn's per-connection ASGI receive queue and ``writable`` event on a
    realtime connection, which never runs the ASGI app: the base class still calls these
    (``put_nowait`` of a disconnect event, ``set``/``clear`` on back-pressure), nothing reads
    them. Dropping the real ones frees five deques (~3.8 KB) per idle connection."""

    __slots__ = ()

    def put_nowait(self, item: Any) -> None:
        return None

    def empty(self) -> bool:
        return True

    def set(self) -> None:
        return None

    def clear(self) -> None:
        return None

    def is_set(self) -> bool:
        return True


_UNUSED = _Unused()


class RealtimeWebSocketProtocol(WebSocketsSansIOProtocol):
    client_handle: Client | None = None
    realtime: RealtimeService | None = None

    def handle_connect(self, event: Request) -> None:
        service = self.app_state.get(STATE_KEY)
        path, _, query = event.path.partition("?")
        if not isinstance(service, RealtimeService) or path.rstrip("/") != PATH:
            super().handle_connect(event)
            return
        self.request = event
        self.handshake_initiated = True
        self.conn.available_extensions = []  # shared frames: no per-connection compression
        params = parse_qs(query)
        serializer = serializer_for(params.get("vsn", [None])[0])
        if serializer is None:
            self._reject(400, "Unsupported serializer version")
            return
        apikey = event.headers.get("x-api-key") or params.get("apikey", [None])[0]
        ip = service.client_ip(self.client[0] if self.client else None, event.headers.get("x-forwarded-for"))
        try:
            info = service.authenticate(apikey, ip)
        except TokenRejected as exc:
            self._reject(429 if exc.code == "ConnectionRateLimitReached" else 401, exc.message)
            return
        response = self.conn.accept(event)
        self.conn.send_response(response)
        self.transport.write(b"".join(self.conn.data_to_send()))
        if response.status_code != 101:
            self.handshake_complete = self.close_sent = True
            self.transport.close()
            return
        self.handshake_complete = True
        self.realtime = service
        # per-connection state only the ASGI path uses: an idle connection's bytes (issue 12 §4)
        self.queue = self.writable = _UNUSED  # type: ignore[assignment]
        # the handshake request is not needed past here; websockets' parser generator keeps a
        # reference to it for the connection's life, so its headers (~2 KB) are emptied in place
        event.headers.clear()
        self.request = None  # type: ignore[assignment]
        # past this many buffered bytes uvloop calls pause_writing: the hub queues and coalesces
        self.transport.set_write_buffer_limits(high=service.limits.write_buffer_high_water)
        self.client_handle = service.attach(self.transport, serializer, info, self._close_from_hub, ip)
        self.backlog: list[tuple[bytes, bool]] = []
        self.busy = False

    def _reject(self, status: int, message: str) -> None:
        response = self.conn.reject(status, orjson.dumps({"error": message}).decode())
        response.headers["Content-Type"] = "application/json"
        self.conn.send_response(response)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.handshake_complete = self.close_sent = True
        self.transport.close()

    def send_receive_event_to_app(self) -> None:
        if self.client_handle is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        binary = self.curr_msg_data_type == "bytes"
        if self.busy:
            self.backlog.append((bytes(data), binary))
            return
        self._feed(bytes(data), binary)

    def _feed(self, data: bytes, binary: bool) -> None:
        assert self.realtime is not None and self.client_handle is not None
        pending = self.realtime.receive(self.client_handle, data, binary)
        if pending is not None:
            self.busy = True
            self.transport.pause_reading()
            task = self.loop.create_task(self._finish(pending))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _finish(self, pending: Any) -> None:
        assert self.realtime is not None and self.client_handle is not None
        client = self.client_handle
        try:
            await pending
        except Exception as exc:
            log_failure(log, "realtime: join or token refresh failed", exc=exc)
        finally:
            self.busy = False
        if client.closed:
            return
        self.realtime.hub.send_protocol_output(client)
        if not self.transport.is_closing():
            self.transport.resume_reading()
        while self.backlog and not self.busy and not client.closed:
            data, binary = self.backlog.pop(0)
            self._feed(data, binary)

    def _close_from_hub(self, code: int, reason: str) -> None:
        """The hub cut this connection off: close frame, then the socket (abort if too slow)."""
        if self.transport.is_closing():
            return
        if code >= 4000:
            self.transport.abort()
            return
        if not self.close_sent:
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client_handle is not None and self.realtime is not None:
            self.realtime.detach(self.client_handle)
        super().connection_lost(exc)
        # the handle and this object point at each other (closer, transport): part here so a
        # closed connection is freed by reference counting (gc.freeze() makes full GCs rare)
        self.client_handle = None
        self.realtime = None
        self.backlog = []

    def pause_writing(self) -> None:
        if self.client_handle is not None:
            self.client_handle.pause_writing()
        super().pause_writing()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.client_handle is not None:
            self.client_handle.resume_writing()

    def shutdown(self) -> None:
        """The server is stopping (SIGTERM): uvicorn closes the socket with 1012 "service
        restart", on which realtime-js, realtime-py and our client reconnect and rejoin (a
        channel `system` error would not do: realtime-js does not rejoin after one). The hub lets
        go first, so no frame of it follows the close frame."""
        if self.client_handle is not None and self.realtime is not None:
            self.realtime.detach(self.client_handle)
        super().shutdown()

    def handle_close(self, event: Any) -> None:
        if self.client_handle is not None and self.realtime is not None:
            self.realtime.detach(self.client_handle)
        super().handle_close(event)
