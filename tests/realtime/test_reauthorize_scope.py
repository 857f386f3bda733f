"""A change of one stream's facts re-checks that stream's readers only (issue 12).

A ban, a co-host change or the end of stream X re-authorizes the members that read X (its own
channel, or a postgres_changes binding scoped to X, refused ones included), found through the
hub's interest index; members of other streams and channels are never visited, however many.
"""

from __future__ import annotations

from typing import Any

import orjson

from onair.domain.identity import Principal
from onair.realtime.policies import StreamFacts, StreamPolicy
from onair.realtime.service import RealtimeService
from onair.topics import StreamBroadcast, StreamState, encode, stream_channel, stream_topic
from tests.realtime.realtime_fakes import Harness, token_verifier

N = 300  # unrelated clients


class Counted:
    """A principal that counts how often its user is read (a visit by a re-authorization)."""

    def __init__(self, principal: Principal) -> None:
        self._principal = principal
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        if name == "user_id":
            self.reads += 1
        return getattr(self._principal, name)


def _binding(table: str, stream: str) -> dict[str, str]:
    return {"event": "*", "schema": "public", "table": table, "filter": f"stream_id=eq.{stream}"}


async def test_a_ban_and_an_end_visit_the_streams_readers_only() -> None:
    banned: set[str] = set()
    facts = {"s1": "seller", "s2": "seller2"}

    async def load(stream_id: str) -> StreamFacts | None:
        seller = facts.get(stream_id)
        return StreamFacts(seller, set(), set(banned)) if seller is not None else None

    policy = StreamPolicy(load)
    service = RealtimeService(token_verifier(), authorizer=policy)
    await service.start()
    try:
        h = Harness(hub=service.hub, authorizer=policy)
        h.dispatcher = service.dispatcher
        victim, tv = h.connect("victim:buyer")
        h.join(victim, stream_channel("s1"))
        watcher, tw = h.connect("watcher:buyer")  # reads s1 through a binding on another channel
        h.join(watcher, "realtime:room", postgres_changes=[_binding("chat_messages", "s1")])
        refused, tr = h.connect("refused:buyer")  # its binding on s1 was refused: still a reader
        h.join(refused, "realtime:room", postgres_changes=[_binding("stream_viewers", "s1")])
        others = []
        for i in range(N):
            client, transport = h.connect(f"other{i}:buyer")
            topic = stream_channel("s2") if i % 3 == 0 else f"realtime:room{i % 7}"
            postgres = [_binding("chat_messages", "s2")] if i % 3 == 1 else []
            h.join(client, topic, postgres_changes=postgres)
            others.append((client, transport))
        readers = {(m.client, m.topic) for m in service.hub.interested("s1")}
        assert readers == {(victim, stream_channel("s1")), (watcher, "realtime:room"), (refused, "realtime:room")}
        counted = []
        for topic in service.hub.topics.values():
            for member in topic.members.values():
                member.principal = Counted(member.principal)
                if member.client not in (victim, watcher, refused):
                    counted.append(member.principal)
        assert len(counted) == N
        for _, transport in others:
            transport.take()
        visited: list[tuple[Any, str]] = []
        reauthorize = service.dispatcher.reauthorize
        service.dispatcher.reauthorize = lambda c, t: visited.append((c, t)) or reauthorize(c, t)  # type: ignore[method-assign]

        banned.add("victim")
        sanction = {"user_id": "victim", "kind": "ban", "until": None, "lifted": False}
        service.on_message(stream_topic("s1"), encode(StreamBroadcast("s1", "chat_sanction", sanction)))
        assert visited == [(victim, stream_channel("s1"))]
        assert [m[3] for m in tv.take()][-2:] == ["system", "phx_close"]
        assert sum(p.reads for p in counted) == 0  # nobody else was even looked at

        visited.clear()
        ended = StreamState({"id": "s1", "status": "ended", "version": 9}, "live", 9)
        service.on_message(stream_topic("s1"), encode(ended))
        assert sorted(t for _, t in visited) == ["realtime:room", "realtime:room"]  # the victim left
        assert {c for c, _ in visited} == {watcher, refused}
        assert sum(p.reads for p in counted) == 0
        assert all(not any(m[3] == "phx_close" for m in t.take()) for _, t in others)
    finally:
        await service.stop()


def test_the_index_follows_joins_rebinds_and_leaves() -> None:
    h = Harness(hub=RealtimeService(token_verifier()).hub)
    c, _ = h.connect("u:buyer")
    h.join(c, stream_channel("a"), postgres_changes=[_binding("chat_messages", "b")])
    assert [m.topic for m in h.hub.interested("a")] == [stream_channel("a")]
    assert [m.topic for m in h.hub.interested("b")] == [stream_channel("a")]
    member = h.hub.member(c, stream_channel("a"))
    assert member is not None
    h.hub.rebind(c, stream_channel("a"), type(member.config)())  # bindings gone
    assert h.hub.interested("b") == [] and len(h.hub.interested("a")) == 1
    h.hub.leave(c, stream_channel("a"))
    assert h.hub.interested("a") == [] and h.hub._interested == {}
    h.join(c, "realtime:room", postgres_changes=[_binding("chat_messages", "b")])
    h.hub.disconnect(c)
    assert h.hub._interested == {}


def test_a_sanction_event_reaches_the_authorizer_through_the_protocol() -> None:
    """ban/unban on every authorizer: the service never asks which kind it holds."""
    calls: list[tuple[str, ...]] = []

    class Recording(StreamPolicy):
        def ban(self, stream_id: str, user_id: str, *, kind: str = "ban", until: float | None = None) -> None:
            calls.append(("ban", stream_id, user_id, kind))

        def unban(self, stream_id: str, user_id: str, *, kind: str | None = "ban") -> None:
            calls.append(("unban", stream_id, user_id, str(kind)))

    service = RealtimeService(token_verifier(), authorizer=Recording())
    for lifted, kind in ((False, "mute"), (True, "ban"), (True, None)):
        payload = {"user_id": "u", "kind": kind, "until": None, "lifted": lifted}
        service.on_message("stream:s", orjson.dumps({"kind": "broadcast", "stream_id": "s",
                                                     "event": "chat_sanction", "payload": payload}))
    assert calls == [("ban", "s", "u", "mute"), ("unban", "s", "u", "ban"), ("unban", "s", "u", "None")]
    plain = RealtimeService(token_verifier())  # AllowAll: the same events are no-ops
    plain.on_message("stream:s", orjson.dumps({"kind": "broadcast", "stream_id": "s", "event": "chat_sanction",
                                               "payload": {"user_id": "u", "kind": "ban", "until": None}}))
