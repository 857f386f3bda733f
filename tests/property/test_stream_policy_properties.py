"""Property (issue 10 §5): whatever sequence of co-host invites/demotions, bans, mutes, lifts and
the end reaches the realtime service as broker events, the policy then answers every (role,
action) exactly as a reference model computed from the final facts alone."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from onair.domain.identity import Principal
from onair.realtime.policies import StreamFacts, StreamPolicy
from onair.realtime.service import RealtimeService
from tests.realtime.realtime_fakes import token_verifier

SID = "s1"
USERS = ["u1", "u2", "u3"]
SERVER = ["stream_state", "viewer_count", "token_renew", "chat_sanction", "chat_settings"]
EVENTS = ["reaction", "seller:state", "webrtc:offer", *SERVER]
TABLES = ["chat_messages", "stream_sessions", "stream_viewers", "stream_cohosts", "chat_sanctions", "agora_tokens"]
RANK = {"chat_messages": 0, "stream_sessions": 0, "stream_cohosts": 1, "stream_viewers": 2, "chat_sanctions": 2}

user = st.sampled_from(USERS)
step = st.one_of(
    st.tuples(st.just("invite"), user), st.tuples(st.just("demote"), user),
    st.tuples(st.just("ban"), user), st.tuples(st.just("mute"), user),
    st.tuples(st.just("lift"), user, st.sampled_from(["ban", "mute", None])), st.tuples(st.just("end")),
)


def envelope(op: tuple[Any, ...]) -> dict[str, Any]:
    name = op[0]
    if name in ("invite", "demote"):
        row = {"stream_id": SID, "user_id": op[1], "invited_by": "seller", "created_at": "2026-01-01T00:00:00Z"}
        return {"kind": "row", "table": "stream_cohosts", "type": "INSERT" if name == "invite" else "DELETE",
                "record": row if name == "invite" else None, "old_record": None if name == "invite" else row,
                "commit_timestamp": "2026-01-01T00:00:00Z"}
    if name == "end":
        return {"kind": "stream_state", "stream": {"id": SID, "status": "ended", "version": 9}, "previous": "live",
                "version": 9}
    payload = ({"user_id": op[1], "kind": op[2], "until": None, "lifted": True} if name == "lift"
               else {"user_id": op[1], "kind": name, "until": None, "lifted": False})
    return {"kind": "broadcast", "stream_id": SID, "event": "chat_sanction", "payload": payload}


def final_facts(start: dict[str, set[str]], ops: list[tuple[Any, ...]]) -> tuple[dict[str, set[str]], bool]:
    facts, ended = {k: set(v) for k, v in start.items()}, False
    for op in ops:
        if op[0] == "invite":
            facts["cohosts"].add(op[1])
        elif op[0] == "demote":
            facts["cohosts"].discard(op[1])
        elif op[0] in ("ban", "mute"):
            facts[op[0]].add(op[1])
        elif op[0] == "lift":
            for kind in ("ban", "mute"):
                if op[2] in (kind, None):
                    facts[kind].discard(op[1])
        else:
            ended = True
    return facts, ended


def reference(facts: dict[str, set[str]], ended: bool, who: Principal, ext: str, action: str, private: bool,
              event: str | None) -> bool:
    if ext == "broadcast" and action == "write" and event in SERVER:
        return who.role == "service"  # server events: the service role only, staff included
    if who.role in ("admin", "moderator", "service"):
        return True
    uid = who.user_id
    if uid in facts["ban"]:
        return False
    signed_in = uid is not None and who.role != "anon"
    owner = signed_in and (uid == "seller" or uid in facts["cohosts"])
    if action == "read":
        if ext.startswith("postgres_changes:"):
            need = RANK.get(ext.split(":", 1)[1])
            return need is not None and (2 if owner else 1 if signed_in else 0) >= need
        return signed_in or not private
    if not signed_in or ended or uid in facts["mute"]:
        return False
    if ext == "broadcast" and event is not None:
        if event in SERVER:
            return False
        if event.startswith(("seller:", "webrtc:")):
            return owner
    return True


PRINCIPALS = [Principal(None, "anon"), Principal("seller", "seller"), Principal("admin1", "admin"),
              *[Principal(u, "buyer") for u in USERS]]
ACTIONS = ([("broadcast", "read", None), ("presence", "read", None), ("presence", "write", None)]
           + [("broadcast", "write", e) for e in EVENTS] + [(f"postgres_changes:{t}", "read", None) for t in TABLES])


@settings(max_examples=300, deadline=None)
@given(start=st.fixed_dictionaries({k: st.sets(user) for k in ("cohosts", "ban", "mute")}),
       ops=st.lists(step, max_size=12))
def test_policy_after_events_equals_reference_of_final_facts(start: dict[str, set[str]], ops: list[tuple[Any, ...]]) -> None:
    policy = StreamPolicy(wall_clock=lambda: 1_000.0)
    service = RealtimeService(token_verifier(), authorizer=policy)
    policy.pin(SID)  # a local member needs the stream: events keep its facts
    policy.store(SID, StreamFacts("seller", set(start["cohosts"]), set(start["ban"]), set(start["mute"])))
    for op in ops:
        service.on_message(f"stream:{SID}", orjson.dumps(envelope(op)))
    facts, ended = final_facts(start, ops)
    for who in PRINCIPALS:
        for private in (False, True):
            for ext, action, event in ACTIONS:
                got = policy.allowed(who, f"stream:{SID}", ext, action, private=private, event=event)
                assert got == reference(facts, ended, who, ext, action, private, event), (who, ext, action, private, event)


until = st.one_of(st.none(), st.floats(min_value=900.0, max_value=1_100.0))


@settings(max_examples=300, deadline=None)
@given(banned=st.dictionaries(user, until), muted=st.dictionaries(user, until),
       now=st.floats(min_value=900.0, max_value=1_100.0))
def test_timed_sanctions_count_only_until_they_expire(banned: dict[str, float | None], muted: dict[str, float | None],
                                                      now: float) -> None:
    """A ban or mute with an end holds while the wall clock is before it, and no longer (the
    policy reads the clock only when the stream has sanctions, so this pins the answer down)."""
    policy = StreamPolicy(wall_clock=lambda: now)
    policy.pin(SID)
    policy.store(SID, StreamFacts("seller", set(), dict(banned), dict(muted)))
    active = {kind: {u for u, end in held.items() if end is None or end > now}
              for kind, held in (("ban", banned), ("mute", muted))}
    facts = {"cohosts": set(), **active}
    for who in PRINCIPALS:
        for ext, action, event in ACTIONS:
            got = policy.allowed(who, f"stream:{SID}", ext, action, event=event)
            assert got == reference(facts, False, who, ext, action, False, event), (who, ext, action, event, now)
