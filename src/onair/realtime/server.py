"""The WebSocket shell: uvicorn protocol classes that hand ``/realtime/v1/websocket`` to the hub.

Why not an ASGI endpoint: ASGI makes every outgoing frame an awaited ``send()`` per connection
(an event dict, a coroutine, websockets framing, a write), which is the per-delivery cost the hub is
built to avoid. uvicorn lets the server choose its WebSocket protocol class (``ws=``): this one
does the upgrade with websockets' sans-I/O ``ServerProtocol`` (request checks, the 101 or an
error response) and then hands the transport of a realtime connection to a
:class:`~onair.realtime.websocket.RealtimeSocket`, a small object that reads the client's frames
itself; the hub writes its shared, pre-framed bytes straight to ``transport.write``. Every other
WebSocket path still goes to the ASGI app through uvicorn's own implementation, which this class
extends.

permessage-deflate is never negotiated here: compressed frames would differ per connection and
could not be shared.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from onair.realtime.dispatcher import TokenRejected
from onair.realtime.protocol.serializer import serializer_for
from onair.realtime.service import PATH, STATE_KEY, RealtimeService
from onair.realtime.websocket import RealtimeSocket

log = logging.getLogger("onair.realtime")


class RealtimeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, which answers the upgrade of a realtime connection
    itself and then gives its transport to a :class:`RealtimeSocket` (and its place in uvicorn's
    ``server_state.connections``); this object is dropped there and then.

    uvicorn's HTTP protocol feeds this object the upgrade request alone, rebuilt from its parsed
    headers, so at the hand-over websockets has read no frame: bytes that came after the request
    reach the new socket through :class:`RealtimeHttpProtocol`."""

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
        self.handshake_complete = True
        if response.status_code != 101:
            self.close_sent = True
            self.transport.close()
            return
        max_size = self.conn.max_size
        assert max_size is not None  # uvicorn passes ws_max_size (wiring.server_options)
        socket = RealtimeSocket(self.transport, service, max_size, self.connections, self.tasks)
        self.connections.discard(self)
        self.connections.add(socket)  # type: ignore[arg-type]  # uvicorn only calls shutdown() on it
        self.transport.set_protocol(socket)
        # past this many buffered bytes uvloop calls pause_writing: the hub queues and coalesces
        self.transport.set_write_buffer_limits(high=service.limits.write_buffer_high_water)
        socket.client = service.attach(self.transport, serializer, info, socket.close_from_hub, ip)
        # websockets' parser generator and its protocol point at each other: end the generator
        # so the pair is freed now, by reference counting, not at some later collection
        self.conn.parser.close()

    def _reject(self, status: int, message: str) -> None:
        response = self.conn.reject(status, orjson.dumps({"error": message}).decode())
        response.headers["Content-Type"] = "application/json"
        self.conn.send_response(response)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.handshake_complete = self.close_sent = True
        self.transport.close()


class RealtimeHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, except that bytes arriving in the same read as a WebSocket
    upgrade request (a client may send its ``phx_join`` right behind the request, in one TCP
    segment) go to the new protocol instead of being dropped."""

    def data_received(self, data: bytes) -> None:
        # uvicorn's method, but for the bytes past an upgrade request
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as exc:
            if not self._should_upgrade():
                self._unsupported_upgrade_warning()
                return
            self.handle_websocket_upgrade()
            # this object is done; it and its parser point at each other: part them, so it is
            # freed now rather than at a later garbage collection
            self.parser = None  # type: ignore[assignment]
            upgraded = self.transport.get_protocol()
            rest = data[exc.args[0]:] if exc.args else b""
            if rest and isinstance(upgraded, RealtimeSocket):
                upgraded.data_received(rest)
