"""A process that dies without a word loses its presence members within presence_ttl.

Node B is a real child process (RedisBroker + RedisPresenceStore + run_heartbeat, as onair wires
them); it tracks members and is then killed with SIGKILL. Node A, in this process, must see B's
members vanish from ``list`` within the TTL and receive their leave diff from its own heartbeat's
sweep. Needs Redis (``ONAIR_TEST_REDIS_URL``): skips without it unless ONAIR_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import uuid
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from onair.broker.presence_base import run_heartbeat
from onair.broker.presence_redis import open_redis_presence
from onair.broker.redis import RedisBroker

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("ONAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TTL = 1.5  # generous: on a busy machine a live node must not miss its heartbeats
INTERVAL = 0.25

NODE_B = textwrap.dedent(
    """
    import asyncio, sys
    from onair.broker.presence_base import run_heartbeat
    from onair.broker.presence_redis import open_redis_presence
    from onair.broker.redis import RedisBroker

    url, prefix, ttl, interval = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])

    class Ignore:
        def on_message(self, topic, data):
            pass

    async def main():
        broker = RedisBroker(url, key_prefix=prefix)
        await broker.start(Ignore())
        async with open_redis_presence(url, broker.publish, ttl=ttl, key_prefix=prefix) as store:
            async def retrack():
                for i in range(3):
                    await store.track("stream:1", "node-b", f"c{i}", f"user-{i}", {"i": i})
            beat = run_heartbeat(store, "node-b", interval, retrack)
            asyncio.get_running_loop().create_task(beat)
            await asyncio.sleep(interval * 2)
            print("ready", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


class Diffs:
    def __init__(self) -> None:
        self.leaves: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    def on_message(self, topic: str, data: bytes) -> None:
        message = orjson.loads(data)
        if message.get("kind") == "presence_diff" and message["leaves"]:
            self.leaves.append(message)
            self.changed.set()


async def test_killed_node_members_disappear_within_ttl() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()  # type: ignore[misc]
    except Exception as exc:
        reason = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("ONAIR_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (ONAIR_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    finally:
        await client.aclose()

    prefix = f"onair-test:{uuid.uuid4().hex}:"
    diffs = Diffs()
    broker = RedisBroker(REDIS_URL, key_prefix=prefix)
    await broker.start(diffs)
    await broker.subscribe("stream:1")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NODE_B, REDIS_URL, prefix, str(TTL), str(INTERVAL),
        stdout=asyncio.subprocess.PIPE,
    )
    async with open_redis_presence(REDIS_URL, broker.publish, ttl=TTL, key_prefix=prefix) as store:
        heartbeat = asyncio.create_task(run_heartbeat(store, "node-a", INTERVAL, _nothing))
        try:
            assert child.stdout is not None
            assert await asyncio.wait_for(child.stdout.readline(), 15) == b"ready\n"
            await store.track("stream:1", "node-a", "c0", "user-a", {"a": True})
            state = await store.list("stream:1")
            assert sorted(state) == ["user-0", "user-1", "user-2", "user-a"]

            child.send_signal(signal.SIGKILL)
            await child.wait()
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            while sorted(await store.list("stream:1")) != ["user-a"]:
                # B's last heartbeat was at most INTERVAL before the kill; the rest is polling slack
                assert loop.time() - killed_at < TTL + 1.0, "B's members outlived presence_ttl"
                await asyncio.sleep(0.05)

            async with asyncio.timeout(TTL + 2 * INTERVAL + 1):
                while not diffs.leaves:
                    diffs.changed.clear()
                    await diffs.changed.wait()
            [leave] = diffs.leaves
            assert leave["node"] == "node-b"
            assert sorted(leave["leaves"]) == ["user-0", "user-1", "user-2"]
            assert await store.list("stream:1") == {
                "user-a": [{"a": True, "phx_ref": state["user-a"][0]["phx_ref"]}]
            }
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if child.returncode is None:
                child.kill()
                await child.wait()
            await broker.close()


async def _nothing() -> None:
    return None


async def test_presence_lost_by_redis_is_restored_by_the_next_heartbeat() -> None:
    """Redis restarted without persistence (here: this test's keys deleted): the heartbeat
    reports the loss and the node's re-track brings its members back for everyone."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()  # type: ignore[misc]
    except Exception as exc:
        await client.aclose()
        reason = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("ONAIR_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (ONAIR_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    prefix = f"onair-test:{uuid.uuid4().hex}:"
    broker = RedisBroker(REDIS_URL, key_prefix=prefix)
    await broker.start(Diffs())
    local = {("stream:1", "c1"): ("user-1", {"n": 1}), ("stream:2", "c2"): ("user-2", {"n": 2})}
    try:
        presence = open_redis_presence(REDIS_URL, broker.publish, ttl=TTL, key_prefix=prefix)
        async with presence as store:

            async def retrack() -> None:
                for (topic, ref), (key, meta) in local.items():
                    await store.track(topic, "node-a", ref, key, meta)

            assert await store.heartbeat("node-a") is False
            await retrack()
            assert await store.heartbeat("node-a") is True
            before = {t: await store.list(t) for t in ("stream:1", "stream:2")}

            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            assert keys
            await client.delete(*keys)
            assert await store.list("stream:1") == {}

            assert await store.heartbeat("node-a") is False
            await retrack()
            assert {t: await store.list(t) for t in ("stream:1", "stream:2")} == before
    finally:
        await client.aclose()
        await broker.close()
