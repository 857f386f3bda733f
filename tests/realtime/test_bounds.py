"""Issue 10 §8, §9, §11 at the dispatcher: topic and user caps, byte budgets per sender and per
topic, presence identity, connection-level token expiry (driven without sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onair.realtime.client import Client
from onair.realtime.limits import ByteBudget, RealtimeLimits
from tests.realtime.realtime_fakes import FakeTransport, Harness

ROOM = "realtime:room"
STREAM = "realtime:stream:s1"


def replies(t: FakeTransport, ref: str) -> list[dict[str, Any]]:
    return [m[4] for m in t.take() if m[3] == "phx_reply" and m[1] == ref]


def join_as(h: Harness, c: Client, topic: str, ref: str, token: str, **config: Any) -> None:
    h.push(c, [ref, ref, topic, "phx_join", {"access_token": token, "config": config}])


def test_topic_longer_than_the_cap_is_refused_and_kept_nowhere() -> None:
    h = Harness()
    c, t = h.connect("u1:buyer")
    c.protocol.max_topic_bytes = 255
    huge = "realtime:" + "x" * 300_000
    h.join(c, huge, ref="1")
    assert replies(t, "1") == [{"status": "error", "response": {"reason": "TopicNameTooLong: Topic name must be at most 255 bytes"}}]
    assert h.hub.topics == {} and c.protocol.channels.topics() == []
    h.join(c, "realtime:" + "é" * 124, ref="2")  # 9 + 248 bytes: over, though 133 characters
    assert replies(t, "2")[0]["status"] == "error"
    h.join(c, "realtime:" + "x" * 246, ref="3")  # exactly 255 bytes
    assert replies(t, "3")[0]["status"] == "ok"


def test_a_join_naming_a_user_counts_toward_that_users_socket_cap() -> None:
    h = Harness(limits=RealtimeLimits(max_connections_per_user=2))
    anon = [h.connect(":anon") for _ in range(3)]
    for i, (c, t) in enumerate(anon):
        join_as(h, c, ROOM, "1", "victim:buyer")
    assert [replies(t, "1")[0]["status"] for _, t in anon] == ["ok", "ok", "error"]
    c3, t3 = anon[2]
    join_as(h, c3, ROOM, "2", "victim:buyer")
    assert replies(t3, "2")[0]["response"] == {"reason": "ConnectionRateLimitReached: Too many connected users"}
    # one socket joining with the same user again (another channel) is still one socket
    c1, t1 = anon[0]
    join_as(h, c1, "realtime:other", "3", "victim:buyer")
    assert replies(t1, "3")[0]["status"] == "ok" and h.hub.connections_of("victim") == 2
    # a socket stops counting once no channel names the user: another may take its place
    h.send(c1, ROOM, "phx_leave", {}, ref="4")
    h.send(c1, "realtime:other", "phx_leave", {}, ref="5")
    assert h.hub.connections_of("victim") == 1
    join_as(h, c3, ROOM, "6", "victim:buyer")
    assert replies(t3, "6")[0]["status"] == "ok"
    for c, _ in anon:
        h.hub.disconnect(c)
    assert h.hub.users == {}


def test_a_token_refresh_to_another_user_is_capped_too() -> None:
    h = Harness(limits=RealtimeLimits(max_connections_per_user=1))
    _a, _ = h.connect("victim:buyer")
    b, tb = h.connect(":anon")
    join_as(h, b, ROOM, "1", "mallory:buyer")
    h.send(b, ROOM, "access_token", {"access_token": "victim:buyer"}, ref="2")
    msgs = tb.take()
    assert any(m[3] == "system" and m[4]["message"] == "Too many connected users" for m in msgs)
    assert h.hub.connections_of("victim") == 1 and h.hub.connections_of("mallory") == 0


def flood(h: Harness, c: Client, topic: str, size: int, n: int, dt: float, ref0: int = 100) -> list[str]:
    """``n`` acked broadcasts of about ``size`` bytes, one every ``dt`` seconds: reply statuses."""
    t: FakeTransport = c.transport  # type: ignore[assignment]
    out = []
    for i in range(n):
        h.now += dt
        h.send(c, topic, "broadcast", {"type": "broadcast", "event": "blob", "payload": {"b": "x" * size}}, ref=str(ref0 + i))
        h.flush()
        got = replies(t, str(ref0 + i))
        out.append(got[0]["status"] if got else "none")
    return out


def test_one_sender_gets_the_user_budget_and_the_topic_keeps_its_own() -> None:
    limits = RealtimeLimits(user_bytes_per_second=65_536, user_burst_bytes=262_144,
                            topic_bytes_per_second=131_072, topic_burst_bytes=524_288)
    h = Harness(limits=limits)
    sender, _ = h.connect("mallory:buyer")
    viewer, tv = h.connect("viewer:buyer")
    h.join(sender, ROOM, ref="1", broadcast={"ack": True})
    h.join(viewer, ROOM, ref="1")
    tv.take()
    # 250 KB at 40/s for 4 s (the attack): only the burst and the refill get through
    statuses = flood(h, sender, ROOM, 250_000, 160, 0.025)
    assert statuses[0] == "ok" and statuses.count("ok") <= 2
    delivered = sum(len(m[4]["payload"]["b"]) for m in tv.take() if m[3] == "broadcast")
    assert delivered <= 262_144 + 4 * 65_536 + 250_000
    # more sockets of the same user do not buy more bytes
    others = [h.connect("mallory:buyer")[0] for _ in range(5)]
    for i, c in enumerate(others):
        h.join(c, ROOM, ref="1", broadcast={"ack": True})
        assert flood(h, c, ROOM, 100_000, 1, 0.0, ref0=500 + i) == ["error"]


def test_over_budget_broadcast_answers_rate_limit_and_without_ack_is_dropped() -> None:
    h = Harness(limits=RealtimeLimits(user_bytes_per_second=1024, user_burst_bytes=4096))
    a, ta = h.connect("a:buyer")
    b, tb = h.connect("b:buyer")
    h.join(a, ROOM, ref="1", broadcast={"ack": True})
    h.join(b, ROOM, ref="1")
    flood(h, a, ROOM, 3000, 1, 0.0)
    h.send(a, ROOM, "broadcast", {"type": "broadcast", "event": "e", "payload": {"b": "x" * 3000}}, ref="7")
    assert replies(ta, "7") == [{"status": "error", "response": {"error": "rate_limit_exceeded"}}]
    assert a in h.hub.topics[ROOM].members  # refused, not cut off
    tb.take()
    h.join(a, ROOM, ref="2")  # no ack
    h.send(a, ROOM, "broadcast", {"type": "broadcast", "event": "e", "payload": {"b": "x" * 3000}}, ref="8")
    h.flush()
    assert replies(ta, "8") == [] and not [m for m in tb.take() if m[3] == "broadcast"]


def test_many_senders_share_one_topic_budget() -> None:
    h = Harness(limits=RealtimeLimits(topic_bytes_per_second=10_000, topic_burst_bytes=20_000))
    senders = [h.connect(f"u{i}:buyer")[0] for i in range(10)]
    for c in senders:
        h.join(c, ROOM, ref="1", broadcast={"ack": True})
    statuses = [flood(h, c, ROOM, 5000, 1, 0.0, ref0=100)[0] for c in senders]
    assert statuses.count("ok") == 3  # 3 × ~5 KB frames fit in 20 KB, the 4th does not
    other, _to = h.connect("x:buyer")
    h.join(other, "realtime:elsewhere", ref="1", broadcast={"ack": True})
    assert flood(h, other, "realtime:elsewhere", 5000, 1, 0.0) == ["ok"]  # other topics unaffected


def test_stream_channels_take_small_payloads_only() -> None:
    h = Harness(limits=RealtimeLimits(stream_max_payload_bytes=32_768, stream_max_presence_bytes=2048))
    c, t = h.connect("u1:buyer")
    h.join(c, STREAM, ref="1", broadcast={"ack": True})
    h.send(c, STREAM, "broadcast", {"type": "broadcast", "event": "e", "payload": {"b": "x" * 40_000}}, ref="2")
    assert replies(t, "2") == [{"status": "error", "response": {"error": "payload_size_exceeded"}}]
    h.send(c, STREAM, "broadcast", {"type": "broadcast", "event": "e", "payload": {"b": "x" * 20_000}}, ref="3")
    assert replies(t, "3")[0]["status"] == "ok"
    h.send(c, STREAM, "presence", {"event": "track", "payload": {"b": "x" * 4000}}, ref="4")
    assert any(m[3] == "system" and m[4]["message"] == "Track message size exceeded" for m in t.take())
    # other channels keep the global limit
    h.join(c, ROOM, ref="5", broadcast={"ack": True})
    h.send(c, ROOM, "broadcast", {"type": "broadcast", "event": "e", "payload": {"b": "x" * 40_000}}, ref="6")
    assert replies(t, "6")[0]["status"] == "ok"


def test_many_sockets_of_one_user_share_the_presence_budget() -> None:
    h = Harness(limits=RealtimeLimits(max_connections_per_user=50))
    socks = [h.connect("mallory:buyer") for _ in range(40)]
    statuses = []
    for i, (c, t) in enumerate(socks):
        h.join(c, ROOM, ref="1")
        t.take()
        h.send(c, ROOM, "presence", {"event": "track", "payload": {"b": "x" * 250_000}}, ref="2")
        got = replies(t, "2")
        statuses.append(got[0])
    assert statuses[0]["status"] == "ok"
    refused = [s for s in statuses if s["status"] == "error"]
    assert len(refused) >= 38 and refused[0]["response"] == {"reason": "Client presence rate limit exceeded"}
    assert all(c in h.hub.topics[ROOM].members for c, _ in socks)  # refused, never disconnected


def test_presence_key_and_identity_fields_are_the_verified_users() -> None:
    h = Harness()
    mallory, _ = h.connect("mallory:buyer")
    anon, _ = h.connect(":anon")
    viewer, tv = h.connect("viewer:buyer")
    h.join(mallory, ROOM, ref="1", presence={"key": "seller-1"})
    h.send(mallory, ROOM, "presence", {"event": "track", "payload": {"user_id": "seller-1", "role": "seller", "name": "M"}}, ref="2")
    h.join(anon, ROOM, ref="1", presence={"key": "guest-7"})
    h.send(anon, ROOM, "presence", {"event": "track", "payload": {"user_id": "seller-1", "role": "admin"}}, ref="2")
    h.flush()
    h.join(viewer, ROOM, ref="1", presence={"key": "viewer", "enabled": True})
    state = next(m[4] for m in tv.take() if m[3] == "presence_state")
    assert set(state) == {"mallory", "guest-7"}
    [m] = state["mallory"]["metas"]
    assert (m["user_id"], m["role"], m["name"]) == ("mallory", "buyer", "M")
    [g] = state["guest-7"]["metas"]
    assert "user_id" not in g and g["role"] == "anon"


def test_socket_whose_apikey_expired_is_closed_by_the_sweep() -> None:
    h = Harness()
    c, t = h.connect("u1:buyer:100")
    other, _to = h.connect("u2:buyer:1000")
    h.join(c, ROOM, ref="1")
    h.join(other, ROOM, ref="1")
    t.take()
    h.now = 50.0
    h.dispatcher.sweep(50.0, 99.0)
    assert not t.closed
    h.dispatcher.sweep(50.0, 101.0)
    assert t.closed and c not in h.hub.clients and other in h.hub.clients
    msgs = t.messages()
    assert any(m[3] == "system" and m[4]["message"].startswith("Token has expired") for m in msgs)
    assert any(m[3] == "phx_close" for m in msgs)


def test_idle_byte_budgets_are_forgotten() -> None:
    h = Harness()
    for i in range(50):
        c, _ = h.connect(f"u{i}:buyer")
        h.join(c, f"realtime:t{i}", ref="1")
        flood(h, c, f"realtime:t{i}", 1000, 1, 0.0)
    assert len(h.dispatcher.user_budget) == 50 and len(h.dispatcher.topic_budget) == 50
    h.dispatcher.sweep(h.now + 30, 0.0)
    assert len(h.dispatcher.user_budget) == 0 and len(h.dispatcher.topic_budget) == 0


@given(st.lists(st.tuples(st.floats(0, 2), st.integers(0, 5000)), max_size=60))
def test_byte_budget_never_lets_more_than_burst_plus_refill_through(steps: list[tuple[float, int]]) -> None:
    """Property: over any schedule, accepted bytes ≤ burst + rate × elapsed time."""
    budget, now, accepted = ByteBudget(1000, 4000), 0.0, 0
    for dt, size in steps:
        now += dt
        if budget.take("k", size, now):
            accepted += size
        assert accepted <= 4000 + 1000 * now + 1e-6


def test_client_ip_trusts_only_the_configured_proxies() -> None:
    from onair.realtime.client_ip import client_ip, trusted_networks

    proxies = trusted_networks(["10.0.0.0/8", "::1"])
    assert client_ip("198.51.100.4", "203.0.113.9", proxies) == "198.51.100.4"  # not from a proxy: ignored
    assert client_ip("10.0.0.2", "203.0.113.9", proxies) == "203.0.113.9"
    assert client_ip("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.7", proxies) == "203.0.113.9"  # forged left hop
    assert client_ip("10.0.0.2", "not-an-ip", proxies) == "10.0.0.2"
    assert client_ip("10.0.0.2", "203.0.113.9", ()) == "10.0.0.2"
    assert client_ip("2001:db8:1:2:aaaa::1", None, ()) == client_ip("2001:db8:1:2:bbbb::9", None, ()) == "2001:db8:1:2::/64"
    assert client_ip("::ffff:198.51.100.4", None, ()) == "198.51.100.4"
    with pytest.raises(ValueError):
        trusted_networks(["10.0.0.0/33"])


def test_what_open_joins_keep_is_bounded_per_connection() -> None:
    """Keys, bindings and tokens of a join are kept while the channel is open: however they are
    padded, one socket's open joins hold at most ``max_join_bytes`` of frames."""
    h = Harness()
    c, t = h.connect("u1:buyer")
    c.protocol.max_join_bytes = 100_000
    bindings = [{"event": "*", "schema": "public", "table": "chat_messages", "pad": "p" * 1000}] * 30
    h.join(c, "realtime:a", ref="1", presence={"key": "k" * 40_000})
    h.join(c, "realtime:b", ref="2", postgres_changes=bindings)
    h.join(c, "realtime:c", ref="3", presence={"key": "k" * 40_000})
    got = t.take()
    assert [m[4]["status"] for r in ("1", "2", "3") for m in got if m[3] == "phx_reply" and m[1] == r] == ["ok", "ok", "error"]
    h.join(c, "realtime:c", ref="4", presence={"key": "k" * 40_000})
    assert replies(t, "4")[0]["response"]["reason"].startswith("JoinPayloadTooLarge:")
    h.join(c, "realtime:a", ref="5", presence={"key": "short"})  # a rejoin replaces its own share
    h.join(c, "realtime:c", ref="6", presence={"key": "k" * 40_000})
    got = t.take()
    assert [m[4]["status"] for r in ("5", "6") for m in got if m[3] == "phx_reply" and m[1] == r] == ["ok", "ok"]
    h.send(c, "realtime:b", "phx_leave", {}, ref="7")
    h.join(c, "realtime:d", ref="8", presence={"key": "k" * 40_000})
    assert replies(t, "8")[0]["status"] == "ok"


def test_viewers_exhausting_a_topic_budget_do_not_silence_the_hosts_signalling() -> None:
    h = Harness(limits=RealtimeLimits(topic_bytes_per_second=10_000, topic_burst_bytes=20_000))
    viewers = [h.connect(f"v{i}:buyer")[0] for i in range(6)]
    host, th = h.connect("host:seller")
    for c in [*viewers, host]:
        h.join(c, ROOM, ref="1", broadcast={"ack": True})
    assert "error" in [flood(h, c, ROOM, 5000, 1, 0.0)[0] for c in viewers]  # the topic is spent
    th.take()
    h.send(host, ROOM, "broadcast", {"type": "broadcast", "event": "webrtc:signal", "payload": {"sdp": "x" * 5000}}, ref="9")
    assert replies(th, "9")[0]["status"] == "ok"
