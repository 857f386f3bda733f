"""Applies a connection's requests to the hub: tokens, authorization, limits, replies.

Everything is synchronous except joins and token refreshes, which may need I/O (loading what the
authorization policy needs); the shell stops reading a connection while one of those runs, so a
connection's frames are still handled strictly in order (spec §3.7).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from onair.domain.identity import Principal
from onair.logs import log_failure
from onair.realtime.client import Client
from onair.realtime.hub import Hub
from onair.realtime.limits import ByteBudget, RealtimeLimits, over_rate
from onair.realtime.policies import AllowAll, Authorizer, role_of
from onair.realtime.protocol import event_names
from onair.realtime.protocol import messages as m
from onair.realtime.protocol.connection import (
    BroadcastRequested,
    JoinRequested,
    LeaveRequested,
    PresenceRequested,
    ProtocolViolation,
    Request,
    TokenRefreshed,
)
from onair.realtime.protocol.errors import Disconnect, TokenRejected
from onair.realtime.protocol.join import JoinConfig, join_response, parse_bindings
from onair.realtime.protocol.messages import Message
from onair.realtime.routing import binding_stream, scope_error
from onair.realtime.signals import FORGED_SIGNAL, forged_signal
from onair.tally import bump
from onair.topics import is_stream_topic, parse_stream_topic, stream_topic

log = logging.getLogger("onair.realtime")
REACTION_EVENT = "react"  # a viewer's tap (services/reactions.py), compared after fold()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    principal: Principal
    exp: float | None  # epoch seconds


Verify = Callable[[str], TokenInfo]  # raises TokenRejected
AsyncVerify = Callable[[str], Awaitable[TokenInfo]]  # the same, may wait for a signing key
Relay = Callable[[str, str, Any, "bytes | None", Client], None]
BrokerReady = Callable[[tuple[str, ...]], Awaitable[None]]  # raises TokenRejected


def encodable(value: Any) -> bool:
    """Whether orjson can write ``value`` back out (it stops at 255 levels of nesting)."""
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def expired_message(exp: float, now: float) -> str:
    return f"Token has expired {max(0, int(now - exp))} seconds ago"


TOO_MANY_USERS = "Too many connected users"
# join-error codes (spec §3.6) -> the bounded ``reason`` label of refused joins
REFUSAL_REASONS = {"InvalidJWTToken": "invalid_token", "MalformedJWT": "invalid_token",
                   "JwtSignatureError": "invalid_token", "": "invalid_token",
                   "Unauthorized": "unauthorized", "ChannelRateLimitReached": "too_many_channels",
                   "ConnectionRateLimitReached": "too_many_connections"}
IDENTITY_FIELDS = ("user_id", "role")  # presence meta fields only the server may fill in


def verified_user(principal: Principal | None) -> str | None:
    """The user a token proves (None for the anon key)."""
    user = getattr(principal, "user_id", None)
    return user if isinstance(user, str) and role_of(principal) != "anon" else None


def presence_key(principal: Principal | None, requested: str) -> str:
    """A signed-in user's presence key is their user id, whatever the client asked for; only
    anonymous clients choose theirs (and their metas carry no ``user_id``, see below)."""
    return verified_user(principal) or requested


def presence_meta(principal: Principal | None, meta: dict[str, Any]) -> dict[str, Any]:
    """The client's meta with ``user_id`` and ``role`` set from the token: present and verified
    for signed-in users, ``role: "anon"`` and no ``user_id`` for anonymous ones."""
    out = {k: v for k, v in meta.items() if k not in IDENTITY_FIELDS}
    user = verified_user(principal)
    if user is not None:
        out["user_id"] = user
    out["role"] = role_of(principal) if user is not None else "anon"
    return out


class Dispatcher:
    def __init__(self, hub: Hub, verify: Verify, *, authorizer: Authorizer | None = None,
                 limits: RealtimeLimits = RealtimeLimits(), relay: Relay | None = None,
                 presence_seed: Callable[[str], Any] | None = None,
                 verify_async: AsyncVerify | None = None, broker_ready: BrokerReady | None = None) -> None:
        self.hub = hub
        self.broker_ready = broker_ready  # a join is confirmed once its broker topics are subscribed
        self.verify = verify
        self.verify_async = verify_async
        self.authorizer: Authorizer = authorizer or AllowAll()
        self.limits = limits
        self.relay = relay
        self.presence_seed = presence_seed  # loads other processes' presence of a topic
        # client-originated broadcast + presence bytes, per sender and per topic (issue 10 §9)
        self.user_budget = ByteBudget(limits.user_bytes_per_second, limits.user_burst_bytes)
        self.topic_budget = ByteBudget(limits.topic_bytes_per_second, limits.topic_burst_bytes)
        # counts a ``react`` tap on a stream channel (services/reactions.py): (principal,
        # stream id, payload, sender key) -> None when taken, else why it was refused
        self.reactions: Callable[[Any, str, Any, str], str | None] | None = None

    # -- synchronous requests ---------------------------------------------------------------------

    def handle(self, client: Client, req: Request, now: float) -> None:
        """Handle every request except joins and token refreshes (see :meth:`join`, :meth:`refresh`)."""
        if isinstance(req, ProtocolViolation):
            log.info("realtime: ignored malformed frame from %r: %s", client, req.reason)
            return
        if isinstance(req, LeaveRequested):
            self.hub.send_protocol_output(client, req.topic)
            self.hub.leave(client, req.topic)
            client.tokens.pop(req.topic, None)
            return
        topic = req.topic  # type: ignore[union-attr]
        if client.rate_count > self.limits.max_messages_per_second:
            bump(self.hub.stats.limit_hits, "messages_per_second")
            self.shutdown(client, topic, "Too many messages per second")
            return
        if isinstance(req, BroadcastRequested):
            self._broadcast(client, req, now)
        elif isinstance(req, PresenceRequested):
            self._presence(client, req, now)
        self.hub.send_protocol_output(client)

    def admit(self, client: Client, now: float) -> bool:
        """Count every frame; past twice the per-second limit the connection is cut off, so a
        flooding client costs others nothing (pushes past the limit close their channel)."""
        client.rate_window, client.rate_count = over_rate(client.rate_window, client.rate_count, now)
        if client.rate_count > 2 * self.limits.max_messages_per_second:
            bump(self.hub.stats.limit_hits, "messages_per_second")
            self.hub.disconnect(client, Disconnect(1008, "Too many messages per second"))
            self.hub.flush()
            return False
        return True

    def _member(self, client: Client, topic: str) -> Any:
        return self.hub.member(client, topic)

    def _within_budget(self, client: Client, member: Any, topic: str, size: int, now: float,
                       event: str | None = None) -> bool:
        fallback = f"ip:{client.ip}" if client.ip is not None else f"conn:{client.id}"
        return self.spend(member.principal, verified_user(client.principal) or fallback, topic, size, now, event)

    def spend(self, principal: Principal | None, fallback: object, topic: str, size: int, now: float,
              event: str | None = None) -> bool:
        """Spend ``size`` bytes of the sender's and the topic's budgets (both or neither). The
        sender is the verified user, else ``fallback`` (the socket's user or IP), so neither more
        sockets nor more channels buy more bytes. The service role (server-side senders) is not
        limited, and the host's own events (``seller:``/``webrtc:``, which only the stream's
        seller and co-hosts may send) skip the topic's budget: viewers flooding a topic must not
        be able to cut the host's signalling off."""
        if role_of(principal) == "service":
            return True
        sender = verified_user(principal) or fallback
        if not self.user_budget.take(sender, size, now):
            return False
        if event is not None and event_names.reserved_for(event) == event_names.HOST:
            return True
        if not self.topic_budget.take(topic, size, now):
            self.user_budget.refund(sender, size)
            return False
        return True

    def _broadcast(self, client: Client, req: BroadcastRequested, now: float) -> None:
        member = self._member(client, req.topic)
        if member is None:
            return
        config: JoinConfig = member.config
        join_ref = member.join_ref
        sub = m.sub_topic(req.topic) or ""
        on_stream = is_stream_topic(sub)
        limit = self.limits.stream_max_payload_bytes if on_stream else self.limits.max_payload_bytes
        if req.size > min(limit, self.limits.max_payload_bytes):
            bump(self.hub.stats.limit_hits, "payload_bytes")
            if config.broadcast_ack:
                client.protocol.send(m.reply(join_ref, req.ref, req.topic, "error", {"error": "payload_size_exceeded"}))
            return
        if not self.authorizer.allowed(member.principal, sub, "broadcast", "write", private=config.private, event=req.event):
            # Supabase drops these silently even with ack (spec §4.2); with ack on we say so,
            # which spares the client a 10 s timeout and changes nothing for the others
            if config.broadcast_ack:
                client.protocol.send(m.reply(join_ref, req.ref, req.topic, "error", {"reason": "Unauthorized"}))
            return
        if on_stream:
            if forged_signal(member.principal, req.event, req.payload):
                if config.broadcast_ack:
                    client.protocol.send(m.reply(join_ref, req.ref, req.topic, "error", {"reason": FORGED_SIGNAL}))
                return
            if event_names.fold(req.event) == REACTION_EVENT:
                self._reaction(client, member, req, sub)
                return
        if not self._within_budget(client, member, req.topic, req.size, now, req.event):
            bump(self.hub.stats.limit_hits, "bytes_per_second")
            if config.broadcast_ack:
                client.protocol.send(m.reply(join_ref, req.ref, req.topic, "error", {"error": "rate_limit_exceeded"}))
            return
        self.hub.broadcast(req.topic, req.event, req.payload, raw=req.raw, sender=client)
        if self.relay is not None:
            self.relay(req.topic, req.event, req.payload, req.raw, client)
        if config.broadcast_ack:
            client.protocol.send(m.reply(join_ref, req.ref, req.topic, "ok", {}))

    def _reaction(self, client: Client, member: Any, req: BroadcastRequested, sub: str) -> None:
        """A tap is counted into the stream's next ``reactions`` aggregate, never fanned out by
        itself (issue 14), whatever casing its event name has; the per-user tap limit of the
        reaction service stands in for the byte budgets."""
        fallback = f"ip:{client.ip}" if client.ip is not None else f"conn:{client.id}"
        sender = verified_user(member.principal) or fallback
        kind = req.payload.get("kind") if isinstance(req.payload, dict) else None
        refused = ("reactions are not available" if self.reactions is None
                   else self.reactions(member.principal, parse_stream_topic(sub) or "", kind, sender))
        if member.config.broadcast_ack:
            status, response = ("error", {"reason": refused}) if refused else ("ok", {})
            client.protocol.send(m.reply(member.join_ref, req.ref, req.topic, status, response))

    def _presence(self, client: Client, req: PresenceRequested, now: float) -> None:
        member = self._member(client, req.topic)
        if member is None:
            return
        sub = m.sub_topic(req.topic) or ""
        limit = self.limits.stream_max_presence_bytes if is_stream_topic(sub) else self.limits.max_payload_bytes
        if req.size > min(limit, self.limits.max_payload_bytes):
            bump(self.hub.stats.limit_hits, "presence_bytes")
            self.shutdown(client, req.topic, "Track message size exceeded")
            return
        if not self.authorizer.allowed(member.principal, sub, "presence", "write", private=member.config.private):
            client.protocol.send(m.reply(member.join_ref, req.ref, req.topic, "error", {}))
            return
        if req.track and not encodable(req.meta):  # it would be re-sent to every joiner
            reason = {"reason": "Presence track payload is nested too deeply"}
            client.protocol.send(m.reply(member.join_ref, req.ref, req.topic, "error", reason))
            return
        if req.track:
            if not self._within_budget(client, member, req.topic, req.size, now):
                bump(self.hub.stats.limit_hits, "bytes_per_second")
                reason = {"reason": "Client presence rate limit exceeded"}
                client.protocol.send(m.reply(member.join_ref, req.ref, req.topic, "error", reason))
                return
            self.hub.track(client, req.topic, presence_meta(member.principal, req.meta))
        else:
            self.hub.untrack(client, req.topic)
        client.protocol.send(m.reply(member.join_ref, req.ref, req.topic, "ok", {}))

    def shutdown(self, client: Client, topic: str, message: str, status: str = "error") -> None:
        """Close one channel with a ``system`` message (an error unless ``status`` says
        otherwise) and ``phx_close`` (spec §7.3)."""
        if client.protocol.shutdown(topic, message, status=status) is not None:
            self.hub.send_protocol_output(client, topic)
            self.hub.leave(client, topic)
            client.tokens.pop(topic, None)

    # -- joins and token refreshes ------------------------------------------------------------------

    async def join(self, client: Client, req: JoinRequested, apikey: TokenInfo, now: float) -> None:
        topic, sub = req.topic, m.sub_topic(req.topic) or ""
        if req.replaces:
            self.hub.leave(client, topic)
        config = req.config
        try:
            if len(client.protocol.channels) > self.limits.max_channels_per_connection:
                bump(self.hub.stats.limit_hits, "channels_per_connection")
                raise TokenRejected("Too many channels", "ChannelRateLimitReached")
            info = apikey if config.access_token is None else await self._verify(config.access_token, now)
            if info.exp is not None and info.exp <= now:
                raise TokenRejected(expired_message(info.exp, now))
            await self.authorizer.prepare(info.principal, sub)
            allowed = self.authorizer.allowed
            reads_b = allowed(info.principal, sub, "broadcast", "read", private=config.private)
            reads_p = allowed(info.principal, sub, "presence", "read", private=config.private)
            if not (reads_b or reads_p):
                raise TokenRejected(f"You do not have permissions to read from this Channel topic: {sub}", "Unauthorized")
            config = await self._check_bindings(info.principal, config, self._filter_cost(client, topic))
            if self.broker_ready is not None:
                # join_ok promises the channel receives: not before the broker delivers to us
                await self.broker_ready(self.hub.broker_topics_of(topic, config))
            # after the last await: the count and the join below happen in one step
            if self._over_user_cap(client, info.principal):
                bump(self.hub.stats.limit_hits, "connections_per_user")
                raise TokenRejected(TOO_MANY_USERS, "ConnectionRateLimitReached")
        except TokenRejected as exc:
            bump(self.hub.stats.joins_refused, REFUSAL_REASONS.get(exc.code, "other"))
            if client.closed:
                return
            client.protocol.join_error(topic, req.ref, f"{exc.code}: {exc.message}" if exc.code else exc.message)
            self.hub.send_protocol_output(client)
            return
        except Exception as exc:
            log_failure(log, "realtime: join of %s failed", topic, exc=exc)
            bump(self.hub.stats.joins_refused, "error")
            if not client.closed:
                client.protocol.join_error(topic, req.ref, "Unknown Error on Channel")
                self.hub.send_protocol_output(client)
            return
        if client.closed:
            return
        member = self.hub.join(client, topic, req.join_ref, config, reads_broadcast=reads_b,
                               reads_presence=reads_p, presence_key=presence_key(info.principal, config.presence_key),
                               principal=info.principal)
        member.token = config.access_token
        if info.exp is not None:
            client.tokens[topic] = info.exp
        client.protocol.join_ok(topic, req.ref, join_response(config))
        self.hub.send_protocol_output(client, topic)
        if self.presence_seed is not None and self.hub.needs_remote_presence(topic):
            try:
                await self.presence_seed(topic)
            except Exception as exc:
                log_failure(log, "realtime: shared presence of %s unavailable", topic, exc=exc)
            if client.closed or self.hub.member(client, topic) is None:
                return
        if config.presence_enabled and reads_p:
            self.hub.send(client, Message(req.join_ref, None, topic, m.PRESENCE_STATE, self.hub.presence_state(topic)))
        if config.bindings:
            errors = [b.error for b in config.bindings if b.error]
            if errors:
                self.hub.send(client, m.system(req.join_ref, topic, "postgres_changes", "error", errors[0]))
            if len(errors) < len(config.bindings):
                self.hub.send(client, m.system(req.join_ref, topic, "postgres_changes", "ok", "Subscribed to PostgreSQL"))

    def _over_user_cap(self, client: Client, principal: Principal | None) -> bool:
        """A socket counts toward every user its apikey or its channels name (a join's
        ``access_token`` too), so more sockets on the anon key do not get around the cap."""
        user = getattr(principal, "user_id", None)
        return (user is not None and user not in client.users
                and self.hub.connections_of(user) >= self.limits.max_connections_per_user)

    def _filter_cost(self, client: Client, except_topic: str) -> int:
        """What evaluating this connection's accepted bindings on other channels costs per row."""
        total = 0
        for topic in client.protocol.channels.topics():
            member = self.hub.member(client, topic) if topic != except_topic else None
            if member is not None:
                total += sum(b.filter.cost for b in member.config.bindings if b.error is None)
        return total

    async def _check_bindings(self, principal: Principal | None, config: JoinConfig, spent: int = 0) -> JoinConfig:
        """Prepare the facts each binding's stream needs, then :meth:`_checked_bindings`."""
        if not config.bindings:
            return config
        for b in config.bindings:
            stream = binding_stream(b)
            if b.error is None and stream is not None:
                await self.authorizer.prepare(principal, stream_topic(stream))
        return self._checked_bindings(principal, config, spent)

    def _checked_bindings(self, principal: Principal | None, config: JoinConfig, spent: int = 0) -> JoinConfig:
        """Scope, authorize (facts prepared) and cost each binding; ``spent`` is the connection's
        filter cost on its other channels (issue 10: one socket's filters, evaluated for every
        row, must not cost unbounded time)."""
        budget = self.limits.filters.max_cost_per_connection
        checked = []
        for b in config.bindings:
            if b.error is None:
                error = scope_error(b)
                stream = binding_stream(b)
                if error is None and stream is not None and not self.authorizer.allowed(
                        principal, stream_topic(stream), f"postgres_changes:{b.table}", "read"):
                    error = f"Unauthorized: You do not have permissions to read {b.table} of stream {stream}"
                if error is None:
                    if spent + b.filter.cost > budget:
                        bump(self.hub.stats.limit_hits, "filter_cost")
                        error = f"filters of this connection exceed their cost budget ({budget}): simplify them or leave a channel"
                    else:
                        spent += b.filter.cost
                if error is not None:
                    b = dataclasses.replace(b, error=error)
            checked.append(b)
        return dataclasses.replace(config, bindings=tuple(checked))

    def reauthorize(self, client: Client, topic: str) -> None:
        """Re-check an open channel after its stream's facts changed (a role change, sanction or
        the end; issue 10 §5), with facts already held by the policy: a member who may no longer
        read is closed like a refused token refresh; bindings it lost are removed with a
        ``system`` error (and bindings it gained are switched on); presence it may no longer
        write is taken back. Broadcast writes are checked at each send anyway."""
        member = self.hub.member(client, topic)
        if member is None or client.closed:
            return
        sub, principal, private = m.sub_topic(topic) or "", member.principal, member.config.private
        allowed = self.authorizer.allowed
        if not (allowed(principal, sub, "broadcast", "read", private=private)
                or allowed(principal, sub, "presence", "read", private=private)):
            self.shutdown(client, topic, f"You no longer have permission to read from this Channel topic: {sub}")
            return
        if member.presence is not None and not allowed(principal, sub, "presence", "write", private=private):
            self.hub.untrack(client, topic)
        if member.config.bindings:
            fresh = dataclasses.replace(member.config, bindings=parse_bindings([b.raw for b in member.config.bindings], self.limits.filters))
            checked = self._checked_bindings(principal, fresh, self._filter_cost(client, topic))
            before = member.config.bindings
            if [b.error for b in checked.bindings] != [b.error for b in before]:
                self.hub.rebind(client, topic, checked)
                lost = [b.error for old, b in zip(before, checked.bindings) if old.error is None and b.error]
                gained = any(old.error is not None and b.error is None for old, b in zip(before, checked.bindings))
                if lost:
                    self.hub.send(client, m.system(member.join_ref, topic, "postgres_changes", "error", lost[0]))
                if gained:
                    self.hub.send(client, m.system(member.join_ref, topic, "postgres_changes", "ok", "Subscribed to PostgreSQL"))
        self.hub.send_protocol_output(client, topic)

    async def _verify(self, token: str, now: float) -> TokenInfo:
        if self.verify_async is not None:
            return await self.verify_async(token)
        return self.verify(token)

    async def refresh(self, client: Client, req: TokenRefreshed, now: float) -> None:
        """``access_token`` push: re-validate and re-authorize; no reply on success (spec §7.2)."""
        member = self._member(client, req.topic)
        if member is None or req.token == member.token:
            return  # the same token again (realtime-js re-sends it on every heartbeat)
        sub = m.sub_topic(req.topic) or ""
        try:
            info = await self._verify(req.token, now)
            if info.exp is not None and info.exp <= now:
                raise TokenRejected(expired_message(info.exp, now))
            await self.authorizer.prepare(info.principal, sub)
            private = member.config.private
            if not (self.authorizer.allowed(info.principal, sub, "broadcast", "read", private=private)
                    or self.authorizer.allowed(info.principal, sub, "presence", "read", private=private)):
                raise TokenRejected(f"You no longer have permission to read from this Channel topic: {sub}", "")
        except TokenRejected as exc:
            if not client.closed:
                self.shutdown(client, req.topic, exc.message)
            return
        if client.closed or self._member(client, req.topic) is not member:
            return
        if self._over_user_cap(client, info.principal):
            self.shutdown(client, req.topic, TOO_MANY_USERS)
            return
        self.hub.set_principal(member, info.principal)
        member.presence_key = presence_key(info.principal, member.config.presence_key) or member.presence_key
        member.token = req.token
        if member.config.bindings:
            fresh = dataclasses.replace(member.config, bindings=parse_bindings([b.raw for b in member.config.bindings], self.limits.filters))
            checked = await self._check_bindings(info.principal, fresh, self._filter_cost(client, req.topic))
            if client.closed or self._member(client, req.topic) is not member:
                return
            if [b.error for b in checked.bindings] != [b.error for b in member.config.bindings]:
                self.hub.rebind(client, req.topic, checked)
        if info.exp is not None:
            client.tokens[req.topic] = info.exp
        else:
            client.tokens.pop(req.topic, None)

    # -- periodic -----------------------------------------------------------------------------------

    def sweep(self, now_mono: float, now_epoch: float) -> None:
        """Close silent connections, connections whose apikey expired and channels whose token
        expired (run every second or so); forget idle byte budgets."""
        timeout = self.limits.heartbeat_timeout
        for client in list(self.hub.clients):
            if client.protocol.idle_for(now_mono) > timeout:
                self.hub.disconnect(client, Disconnect(1000, "heartbeat timeout"))
                continue
            apikey = client.apikey
            if apikey is not None and apikey.exp is not None and apikey.exp <= now_epoch:
                self._expire_connection(client, expired_message(apikey.exp, now_epoch))
                continue
            if client.tokens:
                for topic, exp in list(client.tokens.items()):
                    if exp <= now_epoch:
                        self.shutdown(client, topic, expired_message(exp, now_epoch))
        self.user_budget.prune(now_mono)
        self.topic_budget.prune(now_mono)
        self.hub.flush()

    def _expire_connection(self, client: Client, message: str) -> None:
        """The token the socket connected with expired: every channel gets the ``system`` error
        (as for a channel token, spec §7.3), then the socket is closed — its apikey proves nothing
        any more, so it may not even keep answering heartbeats."""
        for channel in client.protocol.channels.joined():
            self.shutdown(client, channel.topic, message)
        self.hub.send_protocol_output(client)
        self.hub.disconnect(client, Disconnect(1008, message))
