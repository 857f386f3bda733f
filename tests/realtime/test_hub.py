from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from onair.realtime.changes import RowChange
from onair.realtime.hub import Hub
from onair.realtime.limits import RealtimeLimits
from onair.realtime.policies import StreamFacts, StreamPolicy
from onair.realtime.protocol.filters import Filter
from onair.realtime.protocol.messages import BroadcastPush
from onair.realtime.protocol.serializer import V1Serializer, V2Serializer, encode_push
from onair.realtime.routing import broker_topics
from tests.realtime.realtime_fakes import FakeTransport, Harness

T = "realtime:room"


def events(msgs: list[Any]) -> list[str]:
    return [x[3] if isinstance(x, list) else x["event"] for x in msgs]


def test_broadcast_is_encoded_once_per_serializer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for cls in (V1Serializer, V2Serializer):
        original = cls.encode
        monkeypatch.setattr(cls, "encode", lambda self, msg, _o=original: calls.append(msg.event) or _o(self, msg))
    h = Harness()
    clients = [h.connect(f"u{i}:buyer", vsn="1.0.0" if i % 2 else "2.0.0") for i in range(1000)]
    for c, _ in clients:
        h.join(c, T)
    calls.clear()
    h.hub.broadcast(T, "chat", {"body": "hi"})
    h.flush()
    assert calls == ["broadcast", "broadcast"]
    v1 = clients[1][1].take()[-1]
    v2 = clients[0][1].take()[-1]
    assert v1 == {"topic": T, "event": "broadcast", "payload": {"type": "broadcast", "event": "chat", "payload": {"body": "hi"}}, "ref": None}
    assert v2 == [None, None, T, "broadcast", {"type": "broadcast", "event": "chat", "payload": {"body": "hi"}}]


def test_messages_of_one_turn_are_coalesced_into_one_write() -> None:
    h = Harness()
    subs = [h.connect(f"u{i}:buyer") for i in range(5)]
    for c, _ in subs:
        h.join(c, T)
    before = [t.writes for _, t in subs]
    for i in range(10):
        h.hub.broadcast(T, "chat", {"i": i})
    h.flush()
    for (c, t), b in zip(subs, before):
        assert t.writes == b + 1
        assert [x[4]["payload"]["i"] for x in t.take() if x[3] == "broadcast"] == list(range(10))
    assert h.hub.stats.deliveries == 50 and h.hub.stats.writes == 5


def test_self_and_ack() -> None:
    h = Harness()
    a, ta = h.connect("a:buyer")
    b, tb = h.connect("b:buyer")
    c, tc = h.connect("c:buyer")
    h.join(a, T, broadcast={"self": False, "ack": True})
    h.join(b, T, broadcast={"self": True})
    h.join(c, T)
    for t in (ta, tb, tc):
        t.take()
    h.send(a, T, "broadcast", {"type": "broadcast", "event": "e", "payload": {"from": "a"}}, ref="5")
    h.send(b, T, "broadcast", {"type": "broadcast", "event": "e", "payload": {"from": "b"}}, ref="6")
    h.flush()
    got_a, got_b, got_c = ta.take(), tb.take(), tc.take()
    assert ["1", "5", T, "phx_reply", {"status": "ok", "response": {}}] in got_a
    assert [m[4]["payload"]["from"] for m in got_a if m[3] == "broadcast"] == ["b"]
    assert [m[4]["payload"]["from"] for m in got_b if m[3] == "broadcast"] == ["a", "b"]
    assert [m[4]["payload"]["from"] for m in got_c if m[3] == "broadcast"] == ["a", "b"]
    assert not any(m[3] == "phx_reply" for m in got_b)  # no ack without ack:true


def test_binary_push_reaches_v1_as_json_and_raw_bytes_only_v2() -> None:
    h = Harness()
    a, ta = h.connect("a:buyer")
    v1, t1 = h.connect("b:buyer", vsn="1.0.0")
    v2, t2 = h.connect("c:buyer")
    for c in (a, v1, v2):
        h.join(c, T)
    for t in (ta, t1, t2):
        t.take()
    h.push(a, encode_push(BroadcastPush("1", "3", T, "cursor", {}, b'{"x":1}', True)), binary=True)
    h.push(a, encode_push(BroadcastPush("1", "4", T, "blob", {}, b"\x00\x01", False)), binary=True)
    h.flush()
    assert t1.take() == [{"topic": T, "event": "broadcast", "payload": {"type": "broadcast", "event": "cursor", "payload": {"x": 1}}, "ref": None}]
    frames = t2.frames()
    assert frames[0] == (False, b'[null,null,"realtime:room","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]')
    assert frames[1] == (True, b"\x04\x0d\x04\x00\x00realtime:roomblob\x00\x01")


def test_slow_consumer_is_cut_off_and_others_keep_receiving() -> None:
    h = Harness()
    fast = [h.connect(f"f{i}:buyer") for i in range(3)]
    slow, st = h.connect("slow:buyer", max_pending=10_000)
    for c, _ in [*fast, (slow, st)]:
        h.join(c, T, presence={"key": c.user_id})
    h.push(slow, ["1", "2", T, "presence", {"event": "track", "payload": {}}])
    h.flush()
    st.stuck = True
    st.high_water = 1000
    for i in range(200):
        h.hub.broadcast(T, "chat", {"i": i, "pad": "x" * 100})
        h.flush()
    assert st.closed and st.aborted and slow not in h.hub.clients
    assert h.hub.stats.slow_consumers == 1
    for c, t in fast:
        msgs = t.take()
        assert len([m for m in msgs if m[3] == "broadcast"]) == 200
        leaves = [m for m in msgs if m[3] == "presence_diff" and m[4]["leaves"]]
        assert list(leaves[0][4]["leaves"]) == ["slow"]


def test_paused_transport_gets_backlog_in_one_write_on_resume() -> None:
    h = Harness()
    c, t = h.connect()
    h.join(c, T)
    t.take()
    t.stuck, t.high_water = True, 10
    for i in range(5):
        h.hub.broadcast(T, "chat", {"i": i})
        h.flush()
    writes = t.writes
    t.drain()
    assert t.writes == writes + 1
    assert [m[4]["payload"]["i"] for m in t.take()] == [1, 2, 3, 4]  # frame 0 sat in the stuck buffer


def test_presence_state_diff_and_leave_on_disconnect() -> None:
    h = Harness()
    a, ta = h.connect("a:buyer")
    b, tb = h.connect("b:buyer", vsn="1.0.0")
    h.join(a, T, presence={"key": "a", "enabled": True})
    h.push(a, ["1", "2", T, "presence", {"type": "presence", "event": "track", "payload": {"name": "a"}}])
    h.flush()
    h.join(b, T, presence={"key": "b", "enabled": True})
    state = [m for m in tb.take() if m["event"] == "presence_state"][0]["payload"]
    assert list(state) == ["a"] and state["a"]["metas"][0]["name"] == "a" and "phx_ref" in state["a"]["metas"][0]
    h.push(a, ["1", "3", T, "presence", {"event": "track", "payload": {"name": "a2"}}])
    h.flush()
    diff = [m for m in tb.take() if m["event"] == "presence_diff"][0]["payload"]
    assert diff["joins"]["a"]["metas"][0]["name"] == "a2"
    assert diff["joins"]["a"]["metas"][0]["phx_ref_prev"] == diff["leaves"]["a"]["metas"][0]["phx_ref"]
    h.hub.disconnect(a)
    h.flush()
    diff = [m for m in tb.take() if m["event"] == "presence_diff"][0]["payload"]
    meta = {"phx_ref": diff["leaves"]["a"]["metas"][0]["phx_ref"], "name": "a2", "user_id": "a", "role": "buyer"}
    assert diff == {"joins": {}, "leaves": {"a": {"metas": [meta]}}}
    assert h.hub.presence_state(T) == {}


def _change(stream: str, body: str = "hi", kind: str = "INSERT") -> RowChange:
    ev = {"kind": "row", "table": "chat_messages", "type": kind, "record": {"id": "m1", "stream_id": stream, "seq": 1, "body": body},
          "old_record": None, "commit_timestamp": "2026-01-02T03:04:05.678901+00:00"}
    change = RowChange.from_event(ev)
    assert change is not None
    return change


def test_postgres_changes_are_indexed_by_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness()
    subs = []
    for i in range(300):
        c, t = h.connect(f"u{i}:buyer", vsn="1.0.0" if i % 3 == 0 else "2.0.0")
        stream = f"s{i % 100}"
        h.join(c, f"realtime:stream:{stream}", postgres_changes=[{"event": "INSERT", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.{stream}"}])
        subs.append((c, t, stream))
    reply = subs[7][1].messages()[0]
    binding_id = reply[4]["response"]["postgres_changes"][0]["id"]
    assert reply[4]["response"]["postgres_changes"][0] == {"event": "INSERT", "schema": "public", "table": "chat_messages", "filter": "stream_id=eq.s7", "id": binding_id}
    assert subs[0][1].messages()[1]["payload"]["message"] == "Subscribed to PostgreSQL"  # vsn 1.0.0
    for _, t, _ in subs:
        t.take()
    calls = 0
    original = Filter.matches

    def counting(self: Filter, record: Any) -> bool:
        nonlocal calls
        calls += 1
        return original(self, record)

    monkeypatch.setattr(Filter, "matches", counting)
    assert h.hub.change(_change("s7")) == 3
    assert calls == 1  # only stream s7's (three equal) bindings were looked at, and decided once
    h.flush()
    for c, t, stream in subs:
        got = t.take()
        if stream != "s7":
            assert got == []
            continue
        msg = got[0]
        payload = msg["payload"] if isinstance(msg, dict) else msg[4]
        assert payload["ids"] == [binding_id]
        assert payload["data"]["record"]["body"] == "hi" and payload["data"]["commit_timestamp"] == "2026-01-02T03:04:05.678Z"
        assert {"name": "seq", "type": "int8"} in payload["data"]["columns"] and "old_record" not in payload["data"]
    assert h.hub.change(_change("s7", kind="DELETE")) == 0  # binding only wants INSERT


def test_bad_filter_and_unscoped_binding_get_system_errors() -> None:
    h = Harness()
    c, t = h.connect()
    h.join(c, T, postgres_changes=[{"event": "*", "schema": "public", "table": "chat_messages", "filter": "stream_id=foo.1"},
                                   {"event": "*", "schema": "public", "table": "chat_messages"}])
    msgs = t.take()
    assert msgs[0][4]["status"] == "ok" and len(msgs[0][4]["response"]["postgres_changes"]) == 2
    assert msgs[1][3] == "system" and msgs[1][4]["status"] == "error" and msgs[1][4]["message"].startswith("Error parsing `filter` params")
    assert len(h.hub.changes) == 0


def _policy_harness() -> tuple[Harness, StreamPolicy]:
    async def load(stream_id: str) -> StreamFacts | None:
        return StreamFacts("seller", {"cohost"}, {"banned"}) if stream_id == "s1" else None

    policy = StreamPolicy(load)
    return Harness(authorizer=policy), policy


def test_stream_policies() -> None:
    h, _ = _policy_harness()
    topic = "realtime:stream:s1"
    seller, ts = h.connect("seller:seller")
    buyer, tb = h.connect("buyer:buyer")
    banned, tx = h.connect("banned:buyer")
    anon, ta = h.connect(":anon")
    h.join(seller, topic, private=True)
    h.join(buyer, topic, private=True)
    h.join(banned, topic)
    h.join(anon, topic, private=True)
    h.join(buyer, "realtime:stream:nope", ref="2")
    h.join(buyer, "realtime:secret", ref="3", private=True)
    assert ts.take()[0][4]["status"] == "ok"
    replies = tb.take()
    assert replies[0][4]["status"] == "ok"
    assert replies[1][4]["response"] == {"reason": "Unauthorized: You do not have permissions to read from this Channel topic: stream:nope"}
    assert replies[2][4]["response"]["reason"].startswith("Unauthorized")
    assert tx.take()[0][4]["status"] == "error"
    assert ta.take()[0][4]["status"] == "error"
    # buyers cannot send server or seller events; the seller can
    h.send(buyer, topic, "broadcast", {"event": "stream_state", "payload": {"status": "ended"}})
    h.send(buyer, topic, "broadcast", {"event": "seller:pin", "payload": {}})
    h.send(seller, topic, "broadcast", {"event": "stream_state", "payload": {}})
    h.send(buyer, topic, "broadcast", {"event": "reaction", "payload": {"e": "+1"}})
    h.send(seller, topic, "broadcast", {"event": "seller:pin", "payload": {"p": 1}})
    h.flush()
    assert [m[4]["event"] for m in tb.take() if m[3] == "broadcast"] == ["seller:pin"]
    assert [m[4]["event"] for m in ts.take() if m[3] == "broadcast"] == ["reaction"]


def test_limits() -> None:
    h = Harness(limits=RealtimeLimits(max_channels_per_connection=2, max_messages_per_second=5, max_payload_bytes=200))
    c, t = h.connect()
    for i in range(3):
        h.join(c, f"realtime:r{i}", ref=str(i + 1), broadcast={"ack": True})
    assert t.take()[2][4]["response"] == {"reason": "ChannelRateLimitReached: Too many channels"}
    h.send(c, "realtime:r0", "broadcast", {"event": "e", "payload": {"pad": "x" * 300}}, ref="7")
    assert t.take() == [["1", "7", "realtime:r0", "phx_reply", {"status": "error", "response": {"error": "payload_size_exceeded"}}]]
    # 3 joins + 1 push so far; the 6th frame within the second closes the channel it was for
    h.send(c, "realtime:r1", "broadcast", {"event": "e", "payload": {}})
    assert h.hub.member(c, "realtime:r1") is not None
    h.send(c, "realtime:r1", "broadcast", {"event": "e", "payload": {}})
    msgs = t.take()
    assert msgs[-2][3] == "system" and msgs[-2][4]["message"] == "Too many messages per second" and msgs[-1][3] == "phx_close"
    assert h.hub.member(c, "realtime:r1") is None and h.hub.member(c, "realtime:r0") is not None
    for i in range(4):  # frames on the closed channel still count
        h.send(c, "realtime:r1", "broadcast", {"event": "e", "payload": {}})
    assert not t.closed
    h.send(c, "realtime:r1", "broadcast", {"event": "e", "payload": {}})
    assert t.closed and c not in h.hub.clients


def test_token_expiry_and_refresh() -> None:
    h = Harness()
    c, t = h.connect("u:buyer")
    h.join(c, T, ref="1", broadcast={})
    h.push(c, ["2", "2", T, "phx_join", {"config": {}, "access_token": "u:buyer:100"}])  # duplicate join with an expiring token
    t.take()
    h.push(c, ["2", "3", T, "access_token", {"access_token": "u:buyer:200"}])
    assert t.take() == []  # no reply on success
    h.dispatcher.sweep(now_mono=0.0, now_epoch=150.0)
    assert t.take() == []
    h.dispatcher.sweep(now_mono=0.0, now_epoch=203.0)
    assert t.take() == [["2", None, T, "system", {"extension": "system", "status": "error", "message": "Token has expired 3 seconds ago", "channel": "room"}],
                        ["2", "2", T, "phx_close", {}]]
    assert h.hub.topics == {}
    h.join(c, T, ref="4")
    h.push(c, ["4", "5", T, "access_token", {"access_token": "bad"}])
    assert [m[3] for m in t.take()][-2:] == ["system", "phx_close"]


def test_expired_token_at_join() -> None:
    h = Harness()
    h.now = 500.0
    c, t = h.connect()
    h.push(c, ["1", "1", T, "phx_join", {"config": {}, "access_token": "u:buyer:480"}])
    assert t.take()[0][4]["response"] == {"reason": "InvalidJWTToken: Token has expired 20 seconds ago"}
    h.push(c, ["2", "2", T, "phx_join", {"config": {}, "access_token": "bad"}])
    assert t.take()[0][4]["response"] == {"reason": "MalformedJWT: The token provided is not a valid JWT"}


def test_heartbeat_timeout_cleans_up() -> None:
    h = Harness()
    a, ta = h.connect("a:buyer")
    b, tb = h.connect("b:buyer")
    for c in (a, b):
        h.join(c, T, presence={"key": c.user_id})
        h.send(c, T, "presence", {"event": "track", "payload": {}})
    h.flush()
    b.protocol.last_seen = 150.0
    h.dispatcher.sweep(now_mono=161.0, now_epoch=0.0)
    assert ta.closed and not tb.closed and list(h.hub.clients) == [b]
    assert list(h.hub.presence_state(T)) == ["b"] and h.hub.connections_of("a") == 0


def test_broker_subscriptions_follow_local_members() -> None:
    retained: list[str] = []
    released: list[str] = []
    flushes: list[Any] = []
    hub = Hub(flushes.append, broker_topics=broker_topics(distributed=True), on_broker_retain=retained.append, on_broker_release=released.append)
    h = Harness(hub=hub)
    a, _ = h.connect("a:buyer")
    b, _ = h.connect("b:buyer")
    h.join(a, "realtime:stream:s1")
    h.join(b, "realtime:lobby", postgres_changes=[{"event": "INSERT", "schema": "public", "table": "chat_messages", "filter": "stream_id=eq.s1"}])
    assert retained == ["stream:s1", "realtime:stream:s1", "realtime:lobby"]
    h.hub.disconnect(a)
    assert released == ["realtime:stream:s1"]
    h.hub.disconnect(b)
    assert sorted(released) == ["realtime:lobby", "realtime:stream:s1", "stream:s1"] and hub.broker_refs == {}


def test_frames_are_well_formed_for_large_messages() -> None:
    h = Harness()
    c, t = h.connect()
    h.join(c, T)
    t.take()
    for size in (10, 200, 70_000):
        h.hub.broadcast(T, "e", {"pad": "x" * size})
    h.flush()
    assert [len(m[4]["payload"]["pad"]) for m in t.take()] == [10, 200, 70_000]
    assert isinstance(FakeTransport, type) and orjson is not None


def test_token_refresh_reauthorizes_change_bindings() -> None:
    """realtime-js may join before its accessToken callback resolved (anon), then refresh."""
    h, _ = _policy_harness()
    c, t = h.connect(":anon")
    binding = {"event": "INSERT", "schema": "public", "table": "stream_viewers", "filter": "stream_id=eq.s1"}
    h.join(c, "realtime:stream:s1", postgres_changes=[binding])
    msgs = t.take()
    assert msgs[0][4]["status"] == "ok" and msgs[1][4]["status"] == "error"  # anon may not read viewers
    assert len(h.hub.changes) == 0
    h.push(c, ["1", "2", "realtime:stream:s1", "access_token", {"access_token": "seller:seller"}])
    assert len(h.hub.changes) == 1
    change = RowChange.from_event({"kind": "row", "table": "stream_viewers", "type": "INSERT", "record": {"stream_id": "s1", "user_id": "v"},
                                   "old_record": None, "commit_timestamp": "2026-01-01T00:00:00Z"})
    assert change is not None and h.hub.change(change) == 1
    h.push(c, ["1", "3", "realtime:stream:s1", "access_token", {"access_token": "buyer:buyer"}])
    assert len(h.hub.changes) == 0


async def test_ban_event_cuts_the_user_off_at_once() -> None:
    from onair.realtime.service import RealtimeService
    from tests.realtime.realtime_fakes import token_verifier

    banned: set[str] = set()

    async def load(stream_id: str) -> StreamFacts | None:  # the database: the ban row is committed before the event
        return StreamFacts("seller", set(), set(banned)) if stream_id == "s1" else None

    policy = StreamPolicy(load)
    service = RealtimeService(token_verifier(), authorizer=policy)
    await service.start()
    try:
        h = Harness(hub=service.hub, authorizer=policy)
        h.dispatcher = service.dispatcher
        seller, ts = h.connect("seller:seller")
        victim, tv = h.connect(":anon")  # the socket's apikey is anon, the channel's token is the user's
        h.push(victim, ["1", "1", "realtime:stream:s1", "phx_join", {"config": {}, "access_token": "victim:buyer"}])
        h.join(seller, "realtime:stream:s1")
        assert tv.take()[0][4]["status"] == "ok"
        banned.add("victim")
        service.on_message("stream:s1", orjson.dumps({"kind": "broadcast", "stream_id": "s1", "event": "chat_sanction",
                                                     "payload": {"user_id": "victim", "kind": "ban", "until": None, "lifted": False}}))
        msgs = tv.take()
        assert [m[3] for m in msgs] == ["system", "phx_close"]
        assert msgs[0][4]["message"] == "You no longer have permission to read from this Channel topic: stream:s1"
        h.push(victim, ["2", "2", "realtime:stream:s1", "phx_join", {"config": {}, "access_token": "victim:buyer"}])
        assert tv.take()[0][4]["status"] == "error"
        await asyncio.sleep(0.01)  # the service flushes on the loop
        assert any(m[3] == "broadcast" and m[4]["event"] == "chat_sanction" for m in ts.take())
    finally:
        await service.stop()


def test_changes_and_broadcasts_share_the_topic_batch_in_order() -> None:
    h = Harness()
    binding = {"event": "INSERT", "schema": "public", "table": "chat_messages", "filter": "stream_id=eq.s1"}
    watcher, tw = h.connect("w:buyer")
    plain, tp = h.connect("p:buyer", vsn="1.0.0")
    other, to = h.connect("o:buyer")
    h.join(watcher, T, postgres_changes=[binding])
    h.join(plain, T)
    h.join(other, T, postgres_changes=[{**binding, "filter": "stream_id=eq.s2"}])
    for t in (tw, tp, to):
        t.take()
    before = [t.writes for t in (tw, tp, to)]
    h.hub.broadcast(T, "before", {})
    assert h.hub.change(_change("s1")) == 1
    h.hub.broadcast(T, "after", {})
    h.flush()
    assert [m[3] if m[3] != "broadcast" else m[4]["event"] for m in tw.take()] == ["before", "postgres_changes", "after"]
    assert [m["payload"]["event"] for m in tp.take()] == ["before", "after"]
    assert [m[4]["event"] for m in to.take()] == ["before", "after"]
    assert [t.writes - b for t, b in zip((tw, tp, to), before)] == [1, 1, 1]  # one write per member


async def test_unexpected_errors_never_reach_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from onair.realtime.service import RealtimeService
    from tests.realtime.realtime_fakes import token_verifier

    service = RealtimeService(token_verifier())
    await service.start()
    try:
        transport = FakeTransport()
        info = token_verifier()("u:buyer")
        client = service.attach(transport, V2Serializer(), info, lambda code, reason: None)
        transport.client = client
        pending = service.receive(client, orjson.dumps(["1", "1", T, "phx_join", {"config": {}}]), False)
        await pending
        service.hub.send_protocol_output(client)

        def boom(*args: Any) -> None:
            raise KeyError("secret")

        monkeypatch.setattr(service.dispatcher, "handle", boom)
        assert service.receive(client, orjson.dumps(["1", "2", T, "broadcast", {"event": "e", "payload": {}}]), False) is None
        msgs = transport.take()
        assert msgs[-1] == ["1", "1", T, "phx_error", {}]
        assert b"secret" not in bytes(transport.data) and "secret" not in repr(msgs)
        assert service.hub.member(client, T) is None
    finally:
        await service.stop()
