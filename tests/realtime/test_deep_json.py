"""JSON nested past orjson's 255 levels decodes (orjson reads up to 1024) but cannot be written
back out. Found while fuzzing (issue 10): such a broadcast raised inside the hub's flush, which
lost the other messages of that flush and left their topics stuck for good; such a presence meta
broke every later join of its topic; such a binding or presence key failed the join."""

from __future__ import annotations

from tests.realtime.realtime_fakes import Harness


def deep(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


def test_a_deep_broadcast_is_dropped_alone() -> None:
    h = Harness()
    a, _ = h.connect("u1:buyer")
    b, tb = h.connect("u2:buyer")
    for client in (a, b):
        h.join(client, "realtime:x")
        h.join(client, "realtime:y", "2")
    tb.take()
    h.push(a, ('["1","2","realtime:x","broadcast",{"type":"broadcast","event":"bad","payload":' + deep(300) + "}]").encode())
    h.push(a, b'["2","3","realtime:y","broadcast",{"type":"broadcast","event":"good","payload":{}}]')
    h.flush()
    h.push(a, b'["1","4","realtime:x","broadcast",{"type":"broadcast","event":"after","payload":{}}]')
    h.flush()
    assert [(m[2], m[4]["event"]) for m in tb.take() if m[3] == "broadcast"] == [("realtime:y", "good"), ("realtime:x", "after")]


def test_a_deep_presence_meta_is_refused_and_the_topic_stays_joinable() -> None:
    h = Harness()
    a, ta = h.connect("u1:buyer")
    h.join(a, "realtime:x", presence={"enabled": True})
    ta.take()
    h.push(a, ('["1","2","realtime:x","presence",{"type":"presence","event":"track","payload":' + deep(300) + "}]").encode())
    h.flush()
    reply = next(m for m in ta.take() if m[3] == "phx_reply")
    assert reply[4] == {"status": "error", "response": {"reason": "Presence track payload is nested too deeply"}}
    b, tb = h.connect("u2:buyer")
    h.join(b, "realtime:x", presence={"enabled": True})
    h.flush()
    assert [m[3] for m in tb.take()][:2] == ["phx_reply", "presence_state"]


def test_deep_bindings_and_presence_keys_do_not_fail_the_join() -> None:
    h = Harness()
    a, ta = h.connect()
    h.push(a, ('["1","1","realtime:x","phx_join",{"config":{"presence":{"key":' + deep(1000) + '},'
               '"postgres_changes":[{"table":"t","filter":"id=eq.1","x":' + deep(300) + "}]}}]").encode())
    h.flush()
    msgs = ta.take()
    assert msgs[0][4]["status"] == "ok"
    assert msgs[0][4]["response"]["postgres_changes"][0]["table"] == "t"
    assert ("error", "postgres_changes binding is nested too deeply") in [(m[4]["status"], m[4]["message"]) for m in msgs if m[3] == "system"]
