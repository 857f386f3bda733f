"""AppContext: the objects one onair process shares between its routers and background jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from onair.auth.jwt import JwtVerifier
from onair.broker.base import Broker
from onair.domain.clock import Clock
from onair.metrics import Metrics
from onair.services.chat import ChatService
from onair.services.events import EventPublisher
from onair.services.reaper import Reaper
from onair.services.showcase import ShowcaseService
from onair.services.streams import StreamService
from onair.services.telemetry import TelemetryService
from onair.services.tokens import TokenService
from onair.settings import Settings
from onair.store.db import Database

if TYPE_CHECKING:  # the realtime layer imports this module
    from onair.realtime.service import RealtimeService
    from onair.services.reactions import ReactionService


class BrokerFanIn:
    """The one handler given to the broker; hands each message to every registered consumer."""

    def __init__(self) -> None:
        self.consumers: list[Any] = []

    def on_message(self, topic: str, data: bytes) -> None:
        for consumer in self.consumers:
            consumer.on_message(topic, data)

    def on_link_down(self, reason: str) -> None:
        for consumer in self.consumers:
            if hasattr(consumer, "on_link_down"):
                consumer.on_link_down(reason)

    def on_link_up(self) -> None:
        for consumer in self.consumers:
            if hasattr(consumer, "on_link_up"):
                consumer.on_link_up()


@dataclass
class AppContext:
    settings: Settings
    db: Database
    broker: Broker
    broker_fan_in: BrokerFanIn
    events: EventPublisher
    clock: Clock
    jwt: JwtVerifier
    jwt_secret: str
    anon_key: str
    service_key: str
    metrics: Metrics
    streams: StreamService
    reaper: Reaper
    chat: ChatService
    tokens: TokenService
    telemetry: TelemetryService
    showcase: ShowcaseService
    # set by onair.realtime.wiring.build_realtime right after the context is built
    realtime: RealtimeService = field(init=False)
    reactions: ReactionService = field(init=False)  # built with realtime (wiring.build_reactions)
    extras: dict[str, Any] = field(default_factory=dict)
