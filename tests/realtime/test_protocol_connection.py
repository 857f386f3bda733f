from __future__ import annotations

import orjson

from onair.realtime.protocol.connection import (
    BroadcastRequested,
    ConnectionProtocol,
    JoinRequested,
    LeaveRequested,
    PresenceRequested,
    ProtocolViolation,
    TokenRefreshed,
)
from onair.realtime.protocol.messages import BroadcastPush
from onair.realtime.protocol.serializer import SERIALIZERS, encode_push


def frames(p: ConnectionProtocol) -> list[object]:
    out = []
    for f in p.data_to_send():
        assert f[0] == 0x81
        body = f[2:] if f[1] < 126 else f[4:]
        out.append(orjson.loads(body))
    return out


def v2() -> ConnectionProtocol:
    return ConnectionProtocol(SERIALIZERS["2.0.0"], now=0.0)


def join(p: ConnectionProtocol, topic: str = "realtime:room", ref: str = "1") -> JoinRequested:
    req = p.receive(orjson.dumps([ref, ref, topic, "phx_join", {"config": {}}]), False, 1.0)
    assert isinstance(req, JoinRequested)
    p.join_ok(topic, ref, {"postgres_changes": []})
    return req


def test_heartbeat_is_answered_locally_and_refreshes_idle_time() -> None:
    p = v2()
    assert p.receive(b'[null,"9","phoenix","heartbeat",{}]', False, 30.0) is None
    assert frames(p) == [[None, "9", "phoenix", "phx_reply", {"status": "ok", "response": {}}]]
    assert p.idle_for(45.0) == 15.0


def test_v1_heartbeat_with_null_ref() -> None:
    p = ConnectionProtocol(SERIALIZERS["1.0.0"], now=0.0)
    p.receive(b'{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null,"join_ref":null}', False, 1.0)
    assert frames(p) == [{"topic": "phoenix", "event": "phx_reply", "payload": {"status": "ok", "response": {}}, "ref": None}]


def test_join_leave_and_unmatched_topics() -> None:
    p = v2()
    join(p)
    assert frames(p) == [["1", "1", "realtime:room", "phx_reply", {"status": "ok", "response": {"postgres_changes": []}}]]
    assert p.receive(b'["1","2","realtime:other","broadcast",{"event":"x","payload":{}}]', False, 2.0) is None
    assert frames(p) == [["1", "2", "realtime:other", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}]]
    req = p.receive(b'["1","3","realtime:room","phx_leave",{}]', False, 2.0)
    assert req == LeaveRequested("realtime:room", "1")
    assert frames(p) == [["1", "3", "realtime:room", "phx_reply", {"status": "ok", "response": {}}], ["1", "1", "realtime:room", "phx_close", {}]]
    assert p.receive(b'["1","4","realtime:room","phx_leave",{}]', False, 2.0) is None
    assert frames(p)[0][4] == {"status": "ok", "response": {}}


def test_topic_rules() -> None:
    p = v2()
    p.receive(b'["1","1","realtime:","phx_join",{}]', False, 1.0)
    p.receive(b'["2","2","rooms:x","phx_join",{}]', False, 1.0)
    assert [f[4]["response"]["reason"] for f in frames(p)] == ["TopicNameRequired: You must provide a topic name", "unmatched topic"]


def test_duplicate_join_replaces_and_stale_join_ref_is_unmatched() -> None:
    p = v2()
    join(p, ref="1")
    req = p.receive(b'["5","5","realtime:room","phx_join",{}]', False, 1.0)
    assert isinstance(req, JoinRequested) and req.replaces and req.join_ref == "5"
    p.join_ok("realtime:room", "5", {})
    frames(p)
    assert p.receive(b'["1","6","realtime:room","broadcast",{"event":"e","payload":{}}]', False, 1.0) is None
    assert frames(p)[0][4]["response"] == {"reason": "unmatched topic"}


def test_pushes_become_requests() -> None:
    p = v2()
    join(p)
    frames(p)
    b = p.receive(b'["1","2","realtime:room","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]', False, 1.0)
    assert b == BroadcastRequested("realtime:room", "2", "cursor", {"x": 1}, None, 93)
    raw = encode_push(BroadcastPush("1", "3", "realtime:room", "blob", {}, b"\x00\x01", False))
    b2 = p.receive(raw, True, 1.0)
    assert isinstance(b2, BroadcastRequested) and b2.raw == b"\x00\x01" and b2.payload is None
    t = p.receive(b'["1","4","realtime:room","presence",{"event":"TRACK","payload":{"n":1}}]', False, 1.0)
    assert isinstance(t, PresenceRequested) and t.track and t.meta == {"n": 1}
    u = p.receive(b'["1","5","realtime:room","presence",{"event":"untrack"}]', False, 1.0)
    assert isinstance(u, PresenceRequested) and not u.track
    assert p.receive(b'["1","6","realtime:room","access_token",{"access_token":"jwt"}]', False, 1.0) == TokenRefreshed("realtime:room", "jwt")
    assert p.receive(b'["1","7","realtime:room","access_token",{"access_token":"sb_publishable_x"}]', False, 1.0) is None
    assert frames(p) == []


def test_bad_pushes_get_error_replies_and_change_nothing() -> None:
    p = v2()
    join(p)
    frames(p)
    p.receive(b'["1","2","realtime:room","presence",{"event":"track","payload":[1]}]', False, 1.0)
    p.receive(b'["1","3","realtime:room","presence",{"event":"dance"}]', False, 1.0)
    p.receive(b'["1","4","realtime:room","broadcast",{"payload":{}}]', False, 1.0)
    p.receive(b'["1","5","realtime:room","nonsense",{}]', False, 1.0)
    p.receive(b'["1","6","phoenix","nonsense",{}]', False, 1.0)
    responses = [f[4]["response"] for f in frames(p)]
    assert responses == [{"reason": "Presence track payload must be a map"}, {}, {"reason": "malformed broadcast"},
                         {"reason": "unknown event nonsense"}, {"reason": "unmatched topic"}]
    assert isinstance(p.receive(b"not json", False, 1.0), ProtocolViolation)
    assert [c.topic for c in p.channels.joined()] == ["realtime:room"]


def test_shutdown_and_crash() -> None:
    p = v2()
    join(p)
    frames(p)
    assert p.shutdown("realtime:room", "Token has expired 0 seconds ago") == "1"
    assert frames(p) == [["1", None, "realtime:room", "system", {"extension": "system", "status": "error", "message": "Token has expired 0 seconds ago", "channel": "room"}],
                         ["1", "1", "realtime:room", "phx_close", {}]]
    assert p.shutdown("realtime:room", "again") is None
    join(p, ref="2")
    frames(p)
    p.crash("realtime:room")
    assert frames(p) == [["2", "2", "realtime:room", "phx_error", {}]]
    join(p, ref="3")  # an errored channel can be joined again
