"""The realtime service of one process: what the WebSocket shell, REST and the app talk to.

It builds the pieces and joins them: the node (``node.py``: hub, broker subscriptions and link,
publish queue, sweep), the stream events (``stream_events.py``: what a stream's broker events do
to open channels), shared presence (``presence_sync.py``, distributed mode only) and the
dispatcher (``dispatcher.py``: requests of a connection). The connection entry points of the shell
(authenticate, attach, receive, detach) live here, on top of the dispatcher and the hub.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from onair.broker.base import Broker
from onair.realtime.changes import RowChange
from onair.realtime.client import Client
from onair.realtime.client_ip import client_ip, trusted_networks
from onair.realtime.dispatcher import AsyncVerify, Dispatcher, TokenInfo, TokenRejected, Verify
from onair.realtime.limits import RealtimeLimits
from onair.realtime.node import Node
from onair.realtime.ordering import ChatOrder
from onair.realtime.policies import AllowAll, Authorizer
from onair.realtime.presence_sync import PresenceSync
from onair.realtime.protocol.connection import ConnectionProtocol, JoinRequested, TokenRefreshed
from onair.realtime.protocol.serializer import Serializer
from onair.realtime.stream_events import StreamEvents
from onair.tally import bump

log = logging.getLogger("onair.realtime")
STATE_KEY = "onair.realtime"
PATH = "/realtime/v1/websocket"


class RealtimeService:
    def __init__(self, verify: Verify, broker: Broker | None = None, *, limits: RealtimeLimits = RealtimeLimits(),
                 authorizer: Authorizer | None = None, distributed: bool = False, sweep_interval: float = 1.0,
                 unsubscribe_delay: float = 5.0, wall_clock: Callable[[], float] = time.time,
                 presence_store: Callable[[], Any] | None = None, presence_heartbeat: float = 5.0,
                 chat_reorder_wait: float = 0.5, verify_async: AsyncVerify | None = None,
                 trusted_proxies: Iterable[str] = (), policy_refresh_interval: float = 30.0,
                 ended_close_delay: float = 2.0, join_subscribe_timeout: float = 5.0) -> None:
        self.node_id = uuid.uuid4().hex[:8]
        self.distributed = distributed
        self.limits = limits
        self.authorizer: Authorizer = authorizer or AllowAll()
        self.wall_clock = wall_clock
        self.verify = verify
        self.verify_async = verify_async
        self._proxies = trusted_networks(trusted_proxies)
        sync = PresenceSync(self.node_id, presence_store, presence_heartbeat) \
            if distributed and presence_store is not None else None
        self.presence_sync = sync
        self.node = Node(self.node_id, broker, distributed=distributed, sweep_interval=sweep_interval,
                         unsubscribe_delay=unsubscribe_delay, join_subscribe_timeout=join_subscribe_timeout,
                         wall_clock=wall_clock,
                         on_presence=sync.changed if sync is not None else None)
        self.hub = self.node.hub
        self.dispatcher = Dispatcher(self.hub, verify, authorizer=self.authorizer, limits=limits,
                                     relay=self.node.relay if distributed else None,
                                     presence_seed=sync.seed if sync is not None else None,
                                     verify_async=verify_async,
                                     broker_ready=self.node.broker_ready if broker is not None else None)
        # Only several processes can publish one stream's chat rows out of seq order.
        chat_order: ChatOrder[RowChange] | None = ChatOrder(chat_reorder_wait) if distributed else None
        self.events = StreamEvents(self.hub, self.dispatcher, self.authorizer, self.node, node_id=self.node_id,
                                   wall_clock=wall_clock, chat_order=chat_order,
                                   ended_close_delay=ended_close_delay,
                                   policy_refresh_interval=policy_refresh_interval,
                                   shared_presence=sync.active if sync is not None else lambda: False)
        self.node.serve(self.events, sweepers=(self.dispatcher.sweep, self.events.sweep))

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.node.start()
        if self.presence_sync is not None:
            await self.presence_sync.start(self.hub, self.node.enqueue, self.node.spawn)

    async def stop(self) -> None:
        self.node.stop()
        if self.presence_sync is not None:
            await self.presence_sync.stop()

    def monotonic(self) -> float:
        """The loop's clock (the sweep and the byte budgets run on it)."""
        return self.node.monotonic()

    @property
    def presence(self) -> Any:
        """The shared PresenceStore while running (distributed mode), else None."""
        return self.presence_sync.store if self.presence_sync is not None else None

    @property
    def relay_failures(self) -> int:
        """Relays and shared-presence updates the broker refused."""
        return self.node.relay_failures

    # -- broker (the app's fan-in hands every message and link change to the node) ----------------

    def on_message(self, topic: str, data: bytes) -> None:
        self.node.on_message(topic, data)

    def on_link_down(self, reason: str) -> None:
        self.node.on_link_down(reason)

    def on_link_up(self) -> None:
        self.node.on_link_up()

    def broadcast(self, topic: str, event: str, payload: Any) -> None:
        """A server-side broadcast (REST endpoint): local fan-out plus relay to other nodes."""
        self.hub.broadcast(topic, event, payload)
        if self.distributed:
            self.node.relay(topic, event, payload, None, None)

    # -- connections (called by the WebSocket shell) ----------------------------------------------

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        return client_ip(peer, forwarded_for, self._proxies)

    def authenticate(self, apikey: str | None, ip: str | None = None) -> TokenInfo:
        """Connect-time check of the apikey and the connection caps; raises TokenRejected (HTTP
        401 or 429 at the upgrade)."""
        if ip is not None and self.hub.connections_from(ip) >= self.limits.max_connections_per_ip:
            bump(self.hub.stats.limit_hits, "connections_per_ip")
            raise TokenRejected("Too many connected users", "ConnectionRateLimitReached")
        if not apikey:
            raise TokenRejected("API key is missing", "")
        info = self.verify(apikey)
        if info.exp is not None and info.exp <= self.wall_clock():
            raise TokenRejected("Token has expired", "")
        user = getattr(info.principal, "user_id", None)
        if user is not None and self.hub.connections_of(user) >= self.limits.max_connections_per_user:
            bump(self.hub.stats.limit_hits, "connections_per_user")
            raise TokenRejected("Too many connected users", "ConnectionRateLimitReached")
        return info

    def attach(self, transport: Any, serializer: Serializer, apikey: TokenInfo,
               closer: Callable[[int, str], None], ip: str | None = None) -> Client:
        assert self.node.loop is not None
        protocol = ConnectionProtocol(serializer, self.node.loop.time(), self.limits.filters,
                                      self.limits.max_topic_bytes,
                                      self.limits.max_join_bytes_per_connection)
        client = Client(protocol, transport, apikey.principal, self.limits.max_pending_bytes, self.hub.overflow,
                        closer, ip)
        client.apikey = apikey
        self.hub.connect(client)
        return client

    def detach(self, client: Client) -> None:
        self.hub.disconnect(client)

    def receive(self, client: Client, data: bytes, binary: bool) -> Any:
        """One complete frame. Returns a coroutine when the request needs I/O (join, token
        refresh): the shell must not feed this client more frames until it has finished."""
        assert self.node.loop is not None
        now = self.node.loop.time()
        if client.closed or not self.dispatcher.admit(client, now):
            return None
        req = None
        try:
            req = client.protocol.receive(data, binary, now)
            if isinstance(req, JoinRequested):
                return self.dispatcher.join(client, req, client.apikey, self.wall_clock())
            if isinstance(req, TokenRefreshed):
                return self.dispatcher.refresh(client, req, self.wall_clock())
            if req is not None:
                self.dispatcher.handle(client, req, now)
        except Exception:
            # never shown to the client: the channel gets a bare phx_error and rejoins
            log.exception("realtime: request failed")
            topic = getattr(req, "topic", None)
            if topic is not None:
                client.protocol.crash(topic)
                self.hub.leave(client, topic)
        self.hub.send_protocol_output(client)
        return None

