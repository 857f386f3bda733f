"""Builds the realtime service of an app context from its settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onair.broker import open_presence_store
from onair.broker.memory import MemoryBroker
from onair.realtime.auth import jwt_verify, jwt_verify_async
from onair.realtime.facts import StreamFactsLoader
from onair.realtime.limits import RealtimeLimits
from onair.realtime.policies import StreamPolicy
from onair.realtime.protocol.filters import FilterLimits
from onair.realtime.service import RealtimeService
from onair.services.reactions import EVENT as REACTIONS_EVENT
from onair.services.reactions import ReactionService
from onair.topics import stream_channel

if TYPE_CHECKING:
    from onair.context import AppContext


def limits_from(settings: Any) -> RealtimeLimits:
    return RealtimeLimits(
        max_channels_per_connection=settings.realtime_max_channels_per_connection,
        max_messages_per_second=settings.realtime_max_messages_per_second,
        max_payload_bytes=settings.realtime_max_payload_bytes,
        max_connections_per_user=settings.realtime_max_connections_per_user,
        heartbeat_timeout=settings.heartbeat_timeout,
        max_pending_bytes=settings.realtime_max_pending_bytes,
        write_buffer_high_water=settings.realtime_write_buffer_bytes,
        max_topic_bytes=settings.realtime_max_topic_bytes,
        max_join_bytes_per_connection=settings.realtime_max_join_bytes_per_connection,
        max_connections_per_ip=settings.realtime_max_connections_per_ip,
        stream_max_payload_bytes=settings.realtime_stream_max_payload_bytes,
        stream_max_presence_bytes=settings.realtime_stream_max_presence_bytes,
        user_bytes_per_second=settings.realtime_user_bytes_per_second,
        user_burst_bytes=settings.realtime_user_burst_bytes,
        topic_bytes_per_second=settings.realtime_topic_bytes_per_second,
        topic_burst_bytes=settings.realtime_topic_burst_bytes,
        filters=FilterLimits(
            max_bindings=settings.realtime_max_bindings_per_join,
            max_cost_per_connection=settings.realtime_filter_budget_per_connection,
            max_chars=settings.realtime_filter_max_chars,
            max_conditions=settings.realtime_filter_max_conditions,
            max_in_values=settings.realtime_filter_max_in_values,
            max_pattern_chars=settings.realtime_filter_max_pattern_chars,
            max_regex_size=settings.realtime_filter_max_regex_size,
            regex_max_mem=settings.realtime_filter_regex_max_mem,
        ),
    )


def build_realtime(ctx: AppContext) -> RealtimeService:
    """Create the service, register it as a broker consumer and as ``ctx.realtime``."""
    def wall_clock() -> float:
        return float(ctx.clock.now().timestamp())

    service = RealtimeService(
        jwt_verify(ctx.jwt, now=wall_clock), ctx.broker, limits=limits_from(ctx.settings),
        authorizer=StreamPolicy(StreamFactsLoader(ctx), fresh_load=StreamFactsLoader(ctx, fresh=True),
                                max_streams=ctx.settings.realtime_policy_cache_size,
                                ttl=ctx.settings.realtime_policy_cache_ttl,
                                missing_ttl=ctx.settings.realtime_policy_missing_ttl, wall_clock=wall_clock),
        distributed=not isinstance(ctx.broker, MemoryBroker),
        sweep_interval=ctx.settings.realtime_sweep_interval,
        unsubscribe_delay=ctx.settings.realtime_unsubscribe_delay, wall_clock=wall_clock,
        chat_reorder_wait=ctx.settings.realtime_chat_reorder_wait,
        join_subscribe_timeout=ctx.settings.realtime_join_subscribe_timeout,
        policy_refresh_interval=ctx.settings.realtime_policy_refresh_interval,
        presence_store=lambda: open_presence_store(ctx.settings.broker_url, ctx.broker.publish, ctx.settings),
        presence_heartbeat=ctx.settings.presence_heartbeat_interval,
        verify_async=jwt_verify_async(ctx.jwt, now=wall_clock),
        trusted_proxies=ctx.settings.realtime_trusted_proxies,
        ended_close_delay=ctx.settings.realtime_ended_close_delay,
    )
    ctx.broker_fan_in.consumers.append(service)
    ctx.realtime = service
    build_reactions(ctx, service, wall_clock)
    return service


def build_reactions(ctx: Any, service: RealtimeService, wall_clock: Any) -> ReactionService:
    """Taps from the socket (the dispatcher's hook) and REST are counted here; aggregates go to
    the stream's local channel; partials of other processes arrive through the broker."""
    s = ctx.settings
    reactions = ReactionService(service.node_id, window=s.reactions_window, rate=s.reactions_per_second,
                                burst=s.reactions_burst, max_users=s.reactions_max_users,
                                max_streams=s.reactions_max_streams,
                                broker=ctx.broker if service.distributed else None, wall_clock=wall_clock)

    def deliver(stream: str, payload: dict[str, Any]) -> None:
        service.hub.broadcast(stream_channel(stream), REACTIONS_EVENT, payload)

    reactions.deliver = deliver
    service.dispatcher.reactions = lambda _principal, stream, kind, sender: reactions.tap(sender, stream, kind)
    ctx.broker_fan_in.consumers.append(reactions)
    ctx.reactions = reactions
    return reactions


def server_options(settings: Any) -> dict[str, Any]:
    """uvicorn options for the realtime endpoint (see realtime/server.py)."""
    from onair.realtime.server import RealtimeHttpProtocol, RealtimeWebSocketProtocol

    return {"http": RealtimeHttpProtocol, "ws": RealtimeWebSocketProtocol,
            "ws_max_size": settings.realtime_max_payload_bytes + 65_536}
