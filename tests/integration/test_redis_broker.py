"""What only the Redis broker has: key prefixes, the wire names, and surviving a Redis restart.

Restarts use a private ``redis-server`` on a free port (never the machine's Redis); those tests
skip when ``redis-server`` is not installed, unless ``ONAIR_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onair.broker.base import BrokerUnavailable
from onair.broker.redis import RedisBroker

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("ONAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WAIT = 5.0


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("ONAIR_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (ONAIR_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()

    def on_message(self, topic: str, data: bytes) -> None:
        self.got.append((topic, data))
        self.changed.set()

    async def wait_for(self, topic: str, data: bytes) -> None:
        async with asyncio.timeout(WAIT):
            while (topic, data) not in self.got:
                self.changed.clear()
                await self.changed.wait()


async def eventually(check: object, what: str, timeout: float = WAIT) -> None:
    """Poll an async predicate until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


async def is_down(broker: RedisBroker) -> bool:
    try:
        await broker.ping()
    except BrokerUnavailable:
        return True
    return False


async def is_up(broker: RedisBroker) -> bool:
    return not await is_down(broker)


async def noticed(broker: RedisBroker, drops: int) -> bool:
    return broker.links_failed >= drops


# --- shared Redis ------------------------------------------------------------------------------


@pytest.fixture
async def shared_redis() -> AsyncIterator[str]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()  # type: ignore[misc]
    except Exception as exc:
        _skip_or_fail(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()
    yield REDIS_URL


async def test_key_prefix_separates_deployments(shared_redis: str) -> None:
    one = RedisBroker(shared_redis, key_prefix=f"one-{uuid.uuid4().hex}:")
    two = RedisBroker(shared_redis, key_prefix=f"two-{uuid.uuid4().hex}:")
    got_one, got_two = Recorder(), Recorder()
    await one.start(got_one)
    await two.start(got_two)
    try:
        for broker in (one, two):
            await broker.subscribe("stream:1")
        await one.publish("stream:1", b"one")
        await two.publish("stream:1", b"two")
        await got_one.wait_for("stream:1", b"one")
        await got_two.wait_for("stream:1", b"two")
        assert got_one.got == [("stream:1", b"one")]
        assert got_two.got == [("stream:1", b"two")]
    finally:
        await one.close()
        await two.close()


async def test_topics_are_channels_prefix_plus_topic(shared_redis: str) -> None:
    """Anything that can PUBLISH to Redis can feed a topic (documented wire naming)."""
    prefix = f"onair-test:{uuid.uuid4().hex}:"
    broker = RedisBroker(shared_redis, key_prefix=prefix)
    got = Recorder()
    await broker.start(got)
    client = aioredis.Redis.from_url(shared_redis)
    try:
        await broker.subscribe("stream:1")
        assert await _numsub_is(client, f"{prefix}stream:1", 1)
        await client.publish(f"{prefix}stream:1", b"from outside")
        await got.wait_for("stream:1", b"from outside")
        await broker.unsubscribe("stream:1")
        await eventually(
            lambda: _numsub_is(client, f"{prefix}stream:1", 0), "Redis dropped the subscription"
        )
    finally:
        await client.aclose()
        await broker.close()


async def _numsub_is(client: aioredis.Redis, channel: str, n: int) -> bool:
    return bool(await client.pubsub_numsub(channel) == [(channel.encode(), n)])


# --- private Redis that the tests may stop --------------------------------------------------------


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--enable-debug-command", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def wait_ready(self) -> None:
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
            await client.aclose()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        _skip_or_fail("redis-server is not installed (needed for a private Redis to restart)")
    server = PrivateRedis(free_port())
    try:
        yield server
    finally:
        server.stop()


def fast_broker(url: str, key_prefix: str = "t:") -> RedisBroker:
    return RedisBroker(
        url, key_prefix=key_prefix, connect_timeout=0.5, reconnect_min=0.02, reconnect_max=0.1,
        health_interval=0.2,
    )


async def test_survives_redis_restart(private_redis: PrivateRedis) -> None:
    private_redis.start()
    await private_redis.wait_ready()
    broker = fast_broker(private_redis.url)
    got = Recorder()
    await broker.start(got)
    try:
        await broker.subscribe("kept")
        await broker.subscribe("dropped")
        many = [f"many:{i}" for i in range(1500)]  # more than one SUBSCRIBE chunk on reconnect
        await asyncio.gather(*(broker.subscribe(topic) for topic in many))
        await broker.publish("kept", b"before")
        await got.wait_for("kept", b"before")

        private_redis.stop()
        await eventually(lambda: is_down(broker), "ping reports the outage")
        with pytest.raises(BrokerUnavailable):
            await broker.publish("kept", b"lost")
        with pytest.raises(BrokerUnavailable):
            await broker.subscribe("new")
        await broker.unsubscribe("dropped")  # allowed while down: nothing to re-subscribe
        assert broker.topics == {"kept", *many}

        private_redis.start()
        await private_redis.wait_ready()
        await eventually(lambda: is_up(broker), "the broker reconnected")
        client = aioredis.Redis.from_url(private_redis.url)
        try:
            # re-subscribed what is wanted, nothing else
            assert sorted(await client.pubsub_channels()) == sorted(
                f"t:{topic}".encode() for topic in ["kept", *many]
            )
            await client.publish("t:dropped", b"no")
            await client.publish("t:many:1499", b"many")
            await client.publish("t:kept", b"after")
        finally:
            await client.aclose()
        await got.wait_for("kept", b"after")
        await broker.publish("kept", b"own publish")
        await got.wait_for("kept", b"own publish")
        assert got.got == [
            ("kept", b"before"), ("many:1499", b"many"), ("kept", b"after"), ("kept", b"own publish")
        ]
    finally:
        await broker.close()


async def test_starts_while_redis_is_down_and_connects_later(private_redis: PrivateRedis) -> None:
    broker = fast_broker(private_redis.url)
    got = Recorder()
    await broker.start(got)  # returns after connect_timeout instead of failing the process
    try:
        assert await is_down(broker)
        private_redis.start()
        await private_redis.wait_ready()
        await eventually(lambda: is_up(broker), "the broker connected")
        await broker.subscribe("t")
        await broker.publish("t", b"hello")
        await got.wait_for("t", b"hello")
    finally:
        await broker.close()


async def test_killed_connection_is_replaced(private_redis: PrivateRedis) -> None:
    private_redis.start()
    await private_redis.wait_ready()
    broker = fast_broker(private_redis.url)
    got = Recorder()
    await broker.start(got)
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        await broker.subscribe("t")
        await client.client_kill_filter(_type="pubsub")
        await eventually(
            lambda: _numsub_is(client, "t:t", 1), "the subscription came back", timeout=WAIT
        )
        await eventually(lambda: is_up(broker), "the broker is available again")
        await broker.publish("t", b"again")
        await got.wait_for("t", b"again")
    finally:
        await client.aclose()
        await broker.close()


async def test_unresponsive_redis_is_detected(private_redis: PrivateRedis) -> None:
    """A link that stops answering (here: the server blocked) counts as down, then recovers."""
    private_redis.start()
    await private_redis.wait_ready()
    broker = fast_broker(private_redis.url)
    got = Recorder()
    await broker.start(got)
    client = aioredis.Redis.from_url(private_redis.url)
    try:
        await broker.subscribe("t")
        block = client.execute_command("DEBUG", "SLEEP", "1.5")  # type: ignore[no-untyped-call]
        sleeper = asyncio.create_task(block)
        await eventually(lambda: is_down(broker), "the silent link is noticed", timeout=1.4)
        await sleeper
        await eventually(lambda: is_up(broker), "the broker reconnected")
        await broker.publish("t", b"awake")
        await got.wait_for("t", b"awake")
    finally:
        await client.aclose()
        await broker.close()


# --- property: subscriptions survive link drops ---------------------------------------------------


@pytest.fixture(scope="module")
def module_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        _skip_or_fail("redis-server is not installed (needed for a private Redis)")
    server = PrivateRedis(free_port())
    server.start()
    try:
        asyncio.run(server.wait_ready())
        yield server
    finally:
        server.stop()


link_step = st.one_of(
    st.tuples(st.sampled_from(["subscribe", "unsubscribe"]), st.sampled_from(["a", "b", "c"])),
    st.just(("drop", "")),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(link_step, max_size=15))
def test_subscriptions_survive_dropped_links(
    module_redis: PrivateRedis, steps: list[tuple[str, str]]
) -> None:
    """Property 10 (broker part, connection recovery): after any mix of subscribe, unsubscribe
    and killed pub/sub connections, once the broker is back, Redis holds exactly the topics the
    broker reports, which are exactly those whose last successful call was a subscribe, and
    messages flow for those and only those."""
    asyncio.run(_check_link_steps(module_redis.url, steps))


async def _check_link_steps(url: str, steps: list[tuple[str, str]]) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}:"
    broker = fast_broker(url, key_prefix=prefix)  # one private Redis, many examples: apart
    got = Recorder()
    await broker.start(got)
    client = aioredis.Redis.from_url(url)
    model: set[str] = set()
    dropped = 0
    try:
        for op, topic in steps:
            if op == "drop":
                # Counts only when our subscriber link was there to kill (it is a pub/sub
                # connection only while it holds a subscription).
                dropped += await client.client_kill_filter(_type="pubsub")
            elif op == "subscribe":
                try:
                    await broker.subscribe(topic)
                    model.add(topic)
                except BrokerUnavailable:
                    pass  # refused while reconnecting: nothing changes
            else:
                await broker.unsubscribe(topic)
                model.discard(topic)
        # "Back" means after it noticed every drop: right after a kill it may still look up.
        await eventually(lambda: noticed(broker, dropped), "the broker noticed every drop")
        await eventually(lambda: is_up(broker), "the broker is back")
        assert broker.topics == model

        held: set[str] = set()

        async def redis_agrees() -> bool:
            channels = await client.pubsub_channels(f"{prefix}*")
            held.clear()
            held.update(c.decode().removeprefix(prefix) for c in channels)
            return held == model

        await eventually(
            redis_agrees, f"Redis holds the wanted subscriptions (model {model}, Redis {held})"
        )
        for topic in ("a", "b", "c"):
            await broker.publish(topic, b"probe")
        await broker.subscribe("barrier")
        await broker.publish("barrier", b"end")
        await got.wait_for("barrier", b"end")
        assert {t for t, data in got.got if data == b"probe"} == model
    finally:
        await client.aclose()
        await broker.close()
