"""create_broker / open_presence_store pick the implementation from ONAIR_BROKER_URL."""

from __future__ import annotations

import pytest

from onair.broker import create_broker, open_presence_store
from onair.broker.memory import MemoryBroker
from onair.broker.presence_memory import MemoryPresenceStore
from onair.broker.presence_redis import RedisPresenceStore
from onair.broker.redis import RedisBroker
from onair.settings import Settings


@pytest.mark.parametrize("url", [None, "", "memory://"])
async def test_memory_when_unset(url: str | None) -> None:
    assert isinstance(create_broker(url), MemoryBroker)
    broker = MemoryBroker()
    async with open_presence_store(url, broker.publish) as store:
        assert isinstance(store, MemoryPresenceStore)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://cache.example:6380/1", "unix:///run/redis.sock"]
)
async def test_redis_urls(url: str) -> None:
    settings = Settings(broker_key_prefix="tenant-a:", presence_ttl=7.5)
    broker = create_broker(url, settings)  # nothing connects before start()
    assert isinstance(broker, RedisBroker)
    async with open_presence_store(url, broker.publish, settings) as store:
        assert isinstance(store, RedisPresenceStore)
    await broker.close()


@pytest.mark.parametrize("url", ["kafka://broker:9092", "http://127.0.0.1:6379", "redis"])
def test_unsupported_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported broker URL"):
        create_broker(url)


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONAIR_BROKER_URL", "redis://10.0.0.5:6379/2")
    monkeypatch.setenv("ONAIR_BROKER_KEY_PREFIX", "staging:")
    monkeypatch.setenv("ONAIR_PRESENCE_TTL", "30")
    settings = Settings()
    assert settings.broker_url == "redis://10.0.0.5:6379/2"
    assert settings.broker_key_prefix == "staging:"
    assert settings.presence_ttl == 30.0
