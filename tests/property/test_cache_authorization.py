"""Property 12: Backend Performance Consistency — the caches that make the hot paths cheap never
serve stale authorization (issue 11 §8).

Two nodes (two app contexts: own caches, own realtime policies) share one database and one
broker (the in-memory bus or a real Redis), on SQLite and PostgreSQL. Hypothesis interleaves
reads with bans, lifts, co-host invitations and demotions and the stream's end, each made on
either node, optionally while the other node is reading (a read that began before the change
must not put its older answer back). The cache ttl is 300 s, so only invalidation keeps reads
fresh. After every change:

- on the node that made it, every read is fresh at once;
- on the other node, token issue and chat send are exact at once (they decide in their write
  transaction), before the change's invalidation even arrived;
- once the invalidation arrived there, every read there is fresh too: the cached stream row and
  access facts, and the realtime policy's answer for a REST broadcast.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

from onair.app import build_context, start_context, stop_context
from onair.broker.memory import MemoryBroker, MemoryBus
from onair.context import AppContext
from onair.domain.clock import FakeClock
from onair.domain.identity import Principal, Role
from onair.domain.streams import Action, Status
from onair.domain.token_policy import TokenRole
from onair.errors import Problem
from onair.settings import Settings
from tests.conftest import REDIS_URL, need_redis
from tests.integration.test_tokens_api import APP_ID, CERT

USERS = 3
NODES = 2


@pytest.fixture(params=["memory", "redis"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        need_redis()
        request.applymarker(pytest.mark.redis)
    return str(request.param)


def two_node_settings(settings: Settings, broker_kind: str) -> Settings:
    update: dict[str, Any] = {
        "agora_app_id": APP_ID, "agora_app_certificate": SecretStr(CERT),
        "agora_token_rate_limit": "1000000/minute", "chat_rate_burst": 1_000_000,
        "chat_rate_per_second": 1_000_000.0,
        "cache_ttl": 300.0,  # freshness must come from invalidation, never from expiry
        "realtime_policy_cache_ttl": 60.0,
    }
    if broker_kind == "redis":
        update |= {"broker_url": REDIS_URL, "broker_key_prefix": f"cache-{secrets.token_hex(4)}:"}
    return settings.model_copy(update=update)


@asynccontextmanager
async def two_nodes(settings: Settings, clock: FakeClock,
                    broker_kind: str) -> AsyncIterator[list[AppContext]]:
    bus = MemoryBus()
    nodes = [build_context(settings, clock=clock,
                           broker=MemoryBroker(bus) if broker_kind == "memory" else None)
             for _ in range(NODES)]
    for node in nodes:
        await start_context(node, reaper=False)
    try:
        yield nodes
    finally:
        for node in nodes:
            await stop_context(node)


async def delivered(nodes: list[AppContext]) -> None:
    """Until each node has received every invalidation the others published."""
    caches = [node.streams.cache for node in nodes]
    async with asyncio.timeout(10):
        while True:
            sent = sum(c.invalidations["local"] for c in caches)
            if all(c.invalidations["remote"] >= sent - c.invalidations["local"] for c in caches):
                return
            await asyncio.sleep(0.002)


@dataclass
class Model:
    ended: bool = False
    cohosts: set[str] = field(default_factory=set)
    banned: set[str] = field(default_factory=set)


class World:
    def __init__(self, nodes: list[AppContext]) -> None:
        self.nodes = nodes
        tag = secrets.token_hex(4)
        self.seller = Principal(f"seller-{tag}", Role.SELLER)
        self.users = [Principal(f"user-{i}-{tag}", Role.BUYER) for i in range(USERS)]
        self.model = Model()
        self.stream_id = ""

    async def open(self) -> None:
        stream = await self.nodes[0].streams.create(self.seller, "cache")
        await self.nodes[0].streams.act(self.seller, stream.id, Action.START)
        self.stream_id = stream.id

    # -- changes ---------------------------------------------------------------------------

    async def change(self, op: str, node: int, user: int) -> None:
        ctx, sid, who = self.nodes[node], self.stream_id, self.users[user]
        m = self.model
        try:
            if op == "ban":
                await ctx.chat.sanction(self.seller, sid, who.user_id or "", "ban", None, None)
                m.banned.add(who.user_id or "")
            elif op == "lift":
                await ctx.chat.lift(self.seller, sid, who.user_id or "", "ban")
                m.banned.discard(who.user_id or "")
            elif op == "invite":
                await ctx.tokens.invite(self.seller, sid, who.user_id or "")
                m.cohosts.add(who.user_id or "")
            elif op == "demote":
                await ctx.tokens.demote(self.seller, sid, who.user_id or "")
                m.cohosts.discard(who.user_id or "")
            elif op == "end":
                await ctx.streams.act(self.seller, sid, Action.END)
                m.ended = True
        except Problem as problem:  # refused (ended stream, not a co-host): nothing changed
            assert problem.type in {"stream-ended", "cohost-not-found", "illegal-transition"}, problem

    # -- reads -----------------------------------------------------------------------------

    async def warm(self, node: int) -> None:
        """Every cached read of a node, results unchecked (they race with a change)."""
        ctx = self.nodes[node]
        await ctx.streams.get(self.stream_id)
        await ctx.streams.access(self.stream_id)
        for who in self.users:
            await self.policy_allows(node, who, "hello")

    async def policy_allows(self, node: int, who: Principal, event: str) -> bool:
        policy = self.nodes[node].realtime.authorizer
        topic = f"stream:{self.stream_id}"
        await policy.prepare(who, topic)
        return bool(policy.allowed(who, topic, "broadcast", "write", event=event))

    async def check_reads(self, node: int) -> None:
        ctx, m = self.nodes[node], self.model
        stream = await ctx.streams.get(self.stream_id)
        assert (stream.status is Status.ENDED) == m.ended
        access = await ctx.streams.access(self.stream_id)
        assert access is not None
        assert (set(access.cohosts), set(access.bans), access.ended) == (m.cohosts, m.banned, m.ended)
        for who in self.users:
            uid = who.user_id or ""
            writes = not m.ended and uid not in m.banned
            assert await self.policy_allows(node, who, "hello") == writes, (uid, m)
            assert await self.policy_allows(node, who, "seller:cue") == (writes and uid in m.cohosts)

    async def check_hot_paths(self, node: int, user: int) -> None:
        ctx, m, who = self.nodes[node], self.model, self.users[user]
        uid = who.user_id or ""
        try:
            issued = await ctx.tokens.issue(who, self.stream_id, "rtc", requested=TokenRole.PUBLISHER)
            outcome = issued.role.value
        except Problem as problem:
            outcome = problem.type
        assert outcome == ("stream-ended" if m.ended else "publisher" if uid in m.cohosts
                           else "not-a-publisher"), (uid, m)
        try:
            await ctx.chat.send(who, self.stream_id, "hi", secrets.token_hex(8))
            outcome = "created"
        except Problem as problem:
            outcome = problem.type
        assert outcome == ("stream-not-live" if m.ended else "chat-banned" if uid in m.banned
                           else "created"), (uid, m)


CHANGES = st.tuples(st.sampled_from(["ban", "lift", "invite", "demote", "end"]),
                    st.integers(0, NODES - 1), st.integers(0, USERS - 1), st.booleans())


def test_caches_never_serve_stale_authorization(settings: Settings, broker_kind: str) -> None:
    """Property 12: for any interleaving of reads with bans, lifts, promotions, demotions and the
    stream's end on two nodes, no cached read is stale once the change is known to its node."""
    clock = FakeClock()
    config = two_node_settings(settings, broker_kind)
    loop = asyncio.new_event_loop()
    stack: Any = two_nodes(config, clock, broker_kind)
    try:
        nodes = loop.run_until_complete(stack.__aenter__())
    except BaseException:
        loop.close()
        raise
    try:
        @hsettings(max_examples=15 if broker_kind == "redis" else 25, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(st.lists(CHANGES, min_size=1, max_size=8))
        def run(changes: list[tuple[str, int, int, bool]]) -> None:
            loop.run_until_complete(scenario(nodes, changes))

        run()
    finally:
        loop.run_until_complete(stack.__aexit__(None, None, None))
        loop.close()


async def scenario(nodes: list[AppContext], changes: list[tuple[str, int, int, bool]]) -> None:
    world = World(nodes)
    await world.open()
    for node in range(NODES):
        await world.warm(node)
    for op, node, user, racing in changes:
        other = 1 - node
        if racing:  # the other node reads (and caches) while the change commits
            await asyncio.gather(world.change(op, node, user), world.warm(other))
        else:
            await world.change(op, node, user)
        await world.check_reads(node)
        await world.check_hot_paths(other, user)
        await delivered(nodes)
        await world.check_reads(other)
        await world.check_reads(node)
