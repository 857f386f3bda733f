"""Property 8: realtime connection management.

Any sequence of connect / join / leave / disconnect / timeout / broadcast / track / broken transport
over many clients and topics leaves no leaked subscriptions or presence entries, and every message
reaches exactly the authorized members of its topic (checked against a dict model after every step).
A transport whose writes start failing costs only its own client: the hub closes it on its next
write and every other member still gets every message, in order (issue 12 §1).
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from onair.realtime.client import Client
from onair.realtime.hub import Hub
from onair.realtime.limits import RealtimeLimits
from onair.realtime.routing import stream_interests
from onair.topics import parse_stream_channel
from tests.realtime.realtime_fakes import FakeTransport, Harness, parse_frames

TOPICS = ["realtime:a", "realtime:b", "realtime:stream:s1"]
USERS = ["u1", "u2", "u3"]
# private channels: u1 reads everything, u2 broadcasts only, u3 nothing
READ = {("u1", "broadcast"), ("u1", "presence"), ("u2", "broadcast")}


class TestAuthorizer:
    async def prepare(self, principal: Any, topic: str) -> None:
        return None

    def allowed(self, principal: Any, topic: str, extension: str, action: str, *, private: bool = False,
                event: str | None = None) -> bool:
        if not private:
            return True
        if action == "read":
            return (principal.user_id, extension) in READ
        return principal.user_id in ("u1", "u2")


class HubMachine(RuleBasedStateMachine):
    clients = Bundle("clients")

    def __init__(self) -> None:
        super().__init__()
        self.retained: dict[str, int] = {}
        flushes: list[Any] = []
        hub = Hub(flushes.append, broker_topics=lambda topic, config: [topic], interests=stream_interests,
                  on_broker_retain=lambda t: self.retained.__setitem__(t, self.retained.get(t, 0) + 1),
                  on_broker_release=lambda t: self.retained.__setitem__(t, self.retained.get(t, 0) - 1))
        self.h = Harness(hub=hub, authorizer=TestAuthorizer(),
                         limits=RealtimeLimits(max_messages_per_second=10**9, heartbeat_timeout=60))
        self.h.flushes = flushes
        self.alive: dict[int, tuple[Client, FakeTransport]] = {}
        self.members: dict[tuple[int, str], dict[str, Any]] = {}
        # client id -> (topic, broadcast id) still to arrive; order is compared per topic (topics
        # are independent channels, as in Phoenix)
        self.expected: dict[int, list[tuple[str, int]]] = {}
        self.received: dict[int, list[tuple[str, int]]] = {}
        self.next_id = 0
        self.refs = 0
        self.broken: set[int] = set()  # clients whose transport raises on write

    def ref(self) -> str:
        self.refs += 1
        return str(self.refs)

    def tick(self) -> None:
        self.h.now += 1.0

    @rule(target=clients, user=st.sampled_from(USERS), vsn=st.sampled_from(["1.0.0", "2.0.0"]))
    def connect(self, user: str, vsn: str) -> Client:
        self.tick()
        client, transport = self.h.connect(f"{user}:buyer", vsn=vsn)
        note(f"connect {client!r}")
        self.alive[client.id] = (client, transport)
        transport.observer = lambda data, cid=client.id: self._observe(cid, data)
        self.expected[client.id] = []
        self.received[client.id] = []
        return client

    @rule(client=clients, topic=st.sampled_from(TOPICS), private=st.booleans(), self_=st.booleans(), presence=st.booleans(),
          stream=st.sampled_from([None, "s1", "s2"]))
    def join(self, client: Client, topic: str, private: bool, self_: bool, presence: bool, stream: str | None) -> None:
        if client.id not in self.alive or client.closed:  # a closing client's frames are ignored
            return
        self.tick()
        note(f"join {client!r} {topic} private={private} self={self_}")
        self._drop_member(client.id, topic)
        ref = self.ref()
        changes = [] if stream is None else [{"event": "INSERT", "schema": "public", "table": "chat_messages", "filter": f"stream_id=eq.{stream}"}]
        self.h.join(client, topic, ref=ref, private=private, broadcast={"self": self_}, presence={"key": client.user_id, "enabled": presence},
                    postgres_changes=changes)
        user = client.user_id
        rb = not private or (user, "broadcast") in READ
        rp = not private or (user, "presence") in READ
        if rb or rp:
            self.members[(client.id, topic)] = {"self": self_, "rb": rb, "rp": rp, "private": private, "tracked": None,
                                                "stream": stream}
        if client.closed:  # a write of the join failed: the hub closes the socket at its next flush
            self.h.hub.flush()
            self._sync_broken()

    def _drop_member(self, cid: int, topic: str) -> None:
        self.members.pop((cid, topic), None)

    @rule(client=clients, topic=st.sampled_from(TOPICS))
    def leave(self, client: Client, topic: str) -> None:
        if client.id not in self.alive or client.closed:  # a closing client's frames are ignored
            return
        self.tick()
        note(f"leave {client!r} {topic}")
        self.h.send(client, topic, "phx_leave", {}, ref=self.ref())
        self._drop_member(client.id, topic)

    def _gone(self, client: Client) -> None:
        self.alive.pop(client.id, None)
        for key in [k for k in self.members if k[0] == client.id]:
            del self.members[key]

    @rule(client=clients, failures=st.sampled_from([1, -1]))
    def break_transport(self, client: Client, failures: int) -> None:
        """The socket broke: its next write (or every write) raises."""
        if client.id not in self.alive or client.closed:  # a closing client's frames are ignored
            return
        note(f"break {client!r} failures={failures}")
        self.alive[client.id][1].fail_writes = failures
        self.broken.add(client.id)

    def _sync_broken(self) -> None:
        """A broken client leaves once the hub tried to write to it: follow the hub."""
        for cid in list(self.broken):
            entry = self.alive.get(cid)
            if entry is None:
                self.broken.discard(cid)
            elif entry[0] not in self.h.hub.clients:
                assert entry[1].failed and entry[1].closed
                self._gone(entry[0])
                self.broken.discard(cid)

    @rule(client=consumes(clients))
    def disconnect(self, client: Client) -> None:
        self.tick()
        note(f"disconnect {client!r}")
        self.h.hub.disconnect(client)
        self._gone(client)

    @rule(client=consumes(clients))
    def timeout(self, client: Client) -> None:
        self.tick()
        note(f"timeout {client!r}")
        for other, _ in self.alive.values():
            other.protocol.last_seen = self.h.now
        client.protocol.last_seen = self.h.now - 100
        self.h.dispatcher.sweep(self.h.now, 0.0)
        self._gone(client)

    def _publish(self, topic: str, sender: int | None) -> int:
        self.next_id += 1
        for (cid, t), mem in self.members.items():
            if t == topic and mem["rb"] and (cid != sender or mem["self"]):
                self.expected[cid].append((topic, self.next_id))
        return self.next_id

    @rule(client=clients, topic=st.sampled_from(TOPICS))
    def broadcast(self, client: Client, topic: str) -> None:
        if client.id not in self.alive or client.closed:  # a closing client's frames are ignored
            return
        self.tick()
        mem = self.members.get((client.id, topic))
        may_write = mem is not None and (not mem["private"] or client.user_id in ("u1", "u2"))
        n = self._publish(topic, client.id) if may_write else -1
        note(f"broadcast {client!r} {topic} id={n}")
        self.h.send(client, topic, "broadcast", {"type": "broadcast", "event": "m", "payload": {"n": n}}, ref=self.ref())

    @rule(topic=st.sampled_from(TOPICS))
    def server_broadcast(self, topic: str) -> None:
        n = self._publish(topic, None)
        note(f"server broadcast {topic} id={n}")
        self.h.hub.broadcast(topic, "m", {"n": n})

    @rule(stream=st.sampled_from(["s1", "s2"]))
    def chat_insert(self, stream: str) -> None:
        from onair.realtime.changes import RowChange

        self.next_id += 1
        for (cid, t), mem in self.members.items():
            if mem["stream"] == stream:
                self.expected[cid].append((t, self.next_id))
        note(f"chat insert on {stream} id={self.next_id}")
        change = RowChange.from_event({"kind": "row", "table": "chat_messages", "type": "INSERT", "old_record": None,
                                       "record": {"stream_id": stream, "seq": self.next_id}, "commit_timestamp": "2026-01-01T00:00:00Z"})
        assert change is not None
        self.h.hub.change(change)

    @rule(client=clients, topic=st.sampled_from(TOPICS), value=st.integers(0, 2))
    def track(self, client: Client, topic: str, value: int) -> None:
        if client.id not in self.alive or client.closed:  # a closing client's frames are ignored
            return
        self.tick()
        note(f"track {client!r} {topic} {value}")
        self.h.send(client, topic, "presence", {"event": "track", "payload": {"v": value}}, ref=self.ref())
        mem = self.members.get((client.id, topic))
        if mem is not None and (not mem["private"] or client.user_id in ("u1", "u2")):
            mem["tracked"] = {"v": value, "user_id": client.user_id, "role": "buyer"}  # identity set by the server

    @rule(client=clients, topic=st.sampled_from(TOPICS))
    def untrack(self, client: Client, topic: str) -> None:
        if client.id not in self.alive or client.closed:  # a closing client's frames are ignored
            return
        self.tick()
        self.h.send(client, topic, "presence", {"event": "untrack"}, ref=self.ref())
        mem = self.members.get((client.id, topic))
        if mem is not None and (not mem["private"] or client.user_id in ("u1", "u2")):
            mem["tracked"] = None

    @rule()
    def flush(self) -> None:
        self.h.flush()
        self.check_deliveries()

    def _observe(self, cid: int, data: bytes) -> None:
        """Judge every write when it happens, against the model as it is at that moment."""
        client, _ = self.alive[cid]
        for binary, body in parse_frames(data):
            msg = orjson.loads(body)
            event, topic, payload = (msg[3], msg[2], msg[4]) if isinstance(msg, list) else (msg["event"], msg["topic"], msg["payload"])
            if event == "broadcast":
                self.received[cid].append((topic, payload["payload"]["n"]))
            if event == "postgres_changes":
                self.received[cid].append((topic, payload["data"]["record"]["seq"]))
            if event in ("presence_diff", "presence_state"):
                mem = self.members.get((cid, topic))
                assert mem is None or mem["rp"], f"presence leaked to {client!r} on {topic}"

    def check_deliveries(self) -> None:
        self._sync_broken()
        for cid in self.broken:  # may have got some, then nothing: only the others are judged
            self.received[cid].clear()
            self.expected[cid].clear()
        for cid, (client, transport) in self.alive.items():
            for topic in TOPICS:
                got = [n for t, n in self.received[cid] if t == topic]
                want = [n for t, n in self.expected[cid] if t == topic]
                assert got == want, (client, topic, got, want)
            self.received[cid].clear()
            self.expected[cid].clear()

    @invariant()
    def hub_matches_model(self) -> None:
        self._sync_broken()
        hub = self.h.hub
        actual = {(c.id, t) for t, topic in hub.topics.items() for c in topic.members}
        assert actual == set(self.members), (actual, set(self.members))
        assert all(topic.members for topic in hub.topics.values()), "empty topic kept"
        assert {c.id for c in hub.clients} == set(self.alive)
        presence = {(m.client.id, t): m.presence.meta for t in hub.topics for m in hub.members_of(t) if m.presence}
        assert presence == {k: v["tracked"] for k, v in self.members.items() if v["tracked"] is not None}
        assert sum(len(t.presence) for t in hub.topics.values()) == len(presence)
        live = {t for t, topic in hub.topics.items() if topic.members}
        assert {t for t, n in self.retained.items() if n > 0} == live and all(n >= 0 for n in self.retained.values())
        assert set(hub.broker_refs) == live
        users: dict[str, int] = {}
        for c, _ in self.alive.values():
            users[c.user_id] = users.get(c.user_id, 0) + 1  # type: ignore[index]
        assert hub.users == users
        assert len(hub.changes) == sum(1 for v in self.members.values() if v["stream"] is not None)
        # the interest index (who reads which stream) names exactly the model's readers
        readers: dict[str, set[tuple[int, str]]] = {}
        for key, v in self.members.items():
            for stream in {v["stream"], parse_stream_channel(key[1])} - {None}:
                readers.setdefault(stream, set()).add(key)
        assert {s: {(m.client.id, m.topic) for m in hub.interested(s)} for s in hub._interested} == readers

    def teardown(self) -> None:
        self.h.flush()
        self.check_deliveries()


TestHubMachine = HubMachine.TestCase
TestHubMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow])
