"""The app with ``ONAIR_BROKER_URL=redis://…``: readiness follows Redis, events cross processes.

Two app contexts in one event loop stand for two onair processes sharing a private
``redis-server`` (started on a free port and stopped by the test; never the machine's Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from onair.app import build_context, create_app, start_context, stop_context
from onair.broker.redis import RedisBroker
from onair.context import AppContext
from onair.services.events import viewer_count_event
from onair.settings import Settings

pytestmark = pytest.mark.redis

WAIT = 5.0


class PrivateRedis:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    try:
                        await client.ping()  # type: ignore[misc]
                        return
                    except Exception:
                        await asyncio.sleep(0.02)
        finally:
            with contextlib.suppress(Exception):  # a slow close on a busy machine is no failure
                await client.aclose()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        reason = "redis-server is not installed (needed for a private Redis to stop)"
        if os.environ.get("ONAIR_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (ONAIR_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    server = PrivateRedis()
    await server.start()
    try:
        yield server
    finally:
        server.stop()


def node_settings(data_dir: Path, redis_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        broker_url=redis_url,
        broker_key_prefix="app-test:",
        broker_connect_timeout=0.5,
        broker_reconnect_min=0.02,
        broker_reconnect_max=0.1,
        broker_health_interval=0.2,
        log_json=False,
    )


async def started(settings: Settings) -> AppContext:
    ctx = build_context(settings)
    await start_context(ctx, reaper=False)
    return ctx


async def test_readyz_follows_redis(private_redis: PrivateRedis, tmp_path: Path) -> None:
    settings = node_settings(tmp_path, private_redis.url)
    ctx = await started(settings)
    assert isinstance(ctx.broker, RedisBroker)  # the factory honoured ONAIR_BROKER_URL
    app = create_app(settings, ctx=ctx)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://onair.test"
        ) as client:

            async def readiness() -> tuple[int, dict[str, Any]]:
                response = await client.get("/readyz")
                return response.status_code, response.json()

            assert await readiness() == (
                200, {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}
            )
            private_redis.stop()
            await _until(lambda: _status_is(readiness, 503), "readyz reports the outage")
            status, body = await readiness()
            assert body["checks"]["broker"].startswith("failing")
            assert body["checks"]["database"] == "ok"
            await private_redis.start()
            await _until(lambda: _status_is(readiness, 200), "readyz recovers")
    finally:
        await stop_context(ctx)


async def test_events_reach_the_other_process(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    # one data dir (SQLite file, JWT secret) for both "processes", as on one host
    node_a = await started(node_settings(tmp_path, private_redis.url))
    node_b = await started(node_settings(tmp_path, private_redis.url))
    received: list[tuple[str, dict[str, Any]]] = []
    arrived = asyncio.Event()

    class Consumer:
        def on_message(self, topic: str, data: bytes) -> None:
            received.append((topic, orjson.loads(data)))
            arrived.set()

    try:
        node_b.broker_fan_in.consumers.append(Consumer())
        await node_b.broker.subscribe("stream:s1")
        await node_a.events.publish("s1", viewer_count_event("s1", 3, 5))
        await node_a.events.publish("s2", viewer_count_event("s2", 1, 1))  # nobody on B wants s2
        await node_a.events.publish("s1", viewer_count_event("s1", 4, 5))
        async with asyncio.timeout(WAIT):
            while len(received) < 2:
                arrived.clear()
                await arrived.wait()
        assert [(t, e["viewer_count"]) for t, e in received] == [("stream:s1", 3), ("stream:s1", 4)]
        assert node_a.events.failed == 0
    finally:
        await stop_context(node_b)
        await stop_context(node_a)


async def _status_is(readiness: Any, status: int) -> bool:
    return bool((await readiness())[0] == status)


async def _until(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)
