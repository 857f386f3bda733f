"""The per-user send limit holds across processes that share a Redis broker, and chat stays
open (unlimited, logged) when the shared buckets are out of reach.

Two app contexts on one database and one Redis stand for two onair processes behind a load
balancer; a user alternating between them still gets one bucket.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from structlog.testing import capture_logs

from onair.broker.buckets_redis import RedisBuckets
from onair.domain.clock import FakeClock
from onair.domain.identity import Principal, Role
from onair.domain.streams import Action
from onair.errors import Problem
from onair.services.chat import ChatService, send_bucket
from onair.settings import Settings
from tests.apps import running_context
from tests.conftest import REDIS_URL, need_redis

pytestmark = pytest.mark.redis


async def test_two_processes_share_one_bucket_per_user(
    chat_settings: Settings, chat_clock: FakeClock,
) -> None:
    need_redis()
    settings = chat_settings.model_copy(update={
        "broker_url": REDIS_URL, "broker_key_prefix": f"onair-test-{uuid.uuid4().hex}:",
        "chat_rate_burst": 3, "chat_rate_per_second": 0.5,
    })
    seller, buyer = Principal("seller-1", Role.SELLER), Principal("buyer-1", Role.BUYER)
    async with running_context(settings, chat_clock) as a, running_context(settings, chat_clock) as b:
        stream = await a.streams.create(seller, "shared limit")
        await a.streams.act(seller, stream.id, Action.START)
        for i, node in enumerate((a, b, a)):
            assert (await node.chat.send(buyer, stream.id, f"m{i}", f"c{i}")).created
        with pytest.raises(Problem) as refused:
            await b.chat.send(buyer, stream.id, "one too many", "c3")
        assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "2"
        # Another user has a bucket of their own, on either node.
        other = Principal("buyer-2", Role.BUYER)
        assert (await b.chat.send(other, stream.id, "hello", "d0")).created
        chat_clock.advance(2)
        assert (await b.chat.send(buyer, stream.id, "ok now", "c4")).created


async def test_unreachable_buckets_leave_chat_open_and_say_so(
    chat_ctx: Any, chat_stream: Any, chat_user: Any, free_port: int,
) -> None:
    stream_id, _, _ = await chat_stream()
    buyer, _ = chat_user("buyer")
    unreachable = RedisBuckets(f"redis://127.0.0.1:{free_port}/0", send_bucket(chat_ctx.settings),
                               name="chat-send", key_prefix="t:", timeout=0.5)
    service = ChatService(chat_ctx.settings, chat_ctx.db, chat_ctx.events, chat_ctx.clock,
                          buckets=unreachable)
    await service.start()
    try:
        with capture_logs() as logs:
            for i in range(3):
                assert (await service.send(buyer, stream_id, f"m{i}", f"c{i}")).created
        warnings = [e for e in logs if e["event"] == "chat_rate_limit_unchecked"]
        assert len(warnings) == 1  # once a minute, not once per message
    finally:
        await service.close()
