"""Properties 6, 7 and 13 of the seed, against the real service and database (SQLite, PostgreSQL).

Each Hypothesis example works on a fresh live stream of the same app context, so examples are
independent without rebuilding the database.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from onair.app import build_context, start_context, stop_context
from onair.context import AppContext
from onair.domain.clock import FakeClock
from onair.domain.identity import Principal, Role
from onair.domain.streams import Action
from onair.errors import Problem
from onair.services.events import stream_topic
from onair.settings import Settings
from onair.store.tables import chat_messages, stream_sessions
from tests.integration.chat.chat_reference_model import ChatReferenceModel

FIXTURES_OK = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


class EventLog:
    """A broker consumer that records each chat INSERT's seq, per topic, in delivery order."""

    def __init__(self) -> None:
        self.inserts: dict[str, list[int]] = {}

    def on_message(self, topic: str, data: bytes) -> None:
        event = orjson.loads(data)
        if event.get("kind") == "row" and event["table"] == "chat_messages" \
                and event["type"] == "INSERT":
            self.inserts.setdefault(topic, []).append(event["record"]["seq"])


async def listen(ctx: AppContext, stream_id: str, log: EventLog) -> None:
    if log not in ctx.broker_fan_in.consumers:
        ctx.broker_fan_in.consumers.append(log)
    await ctx.broker.subscribe(stream_topic(stream_id))


@pytest.fixture
async def second_process(chat_settings: Settings, chat_clock: FakeClock) -> Any:
    """Another onair 'process' on the same database: own pool, own writer, own broker."""
    ctx = build_context(chat_settings, clock=chat_clock)
    await start_context(ctx, reaper=False)
    try:
        yield ctx
    finally:
        await stop_context(ctx)


sends = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 6), st.integers(0, 3), st.booleans()),
    min_size=1, max_size=40,
)


@settings(FIXTURES_OK, max_examples=15)
@given(plan=sends)
async def test_property_6_chat_delivery_and_ordering(
    chat_ctx: AppContext, second_process: AppContext, chat_stream: Any, plan: list[Any]
) -> None:
    """Property 6: chat delivery and ordering — any interleaving of concurrent sends from many
    users, through two processes sharing the database, including retries of one client_msg_id,
    yields seqs 1..n with no gaps and one row per (sender, client_msg_id); each process's events
    for the stream come in seq order and together carry every message exactly once."""
    stream_id, _, _ = await chat_stream()
    logs = {id(chat_ctx): EventLog(), id(second_process): EventLog()}
    for ctx in (chat_ctx, second_process):
        await listen(ctx, stream_id, logs[id(ctx)])
    users = [Principal(f"user-{i}", Role.BUYER) for i in range(6)]

    async def one(user: int, key: int, delay: int, via_second: bool) -> tuple[str, int, bool]:
        for _ in range(delay):
            await asyncio.sleep(0)
        ctx = second_process if via_second else chat_ctx
        result = await ctx.chat.send(users[user], stream_id, f"{user}/{key}", f"k{key}")
        return result.message.id, result.message.seq, result.created

    results = await asyncio.gather(*(one(*step) for step in plan))

    by_key: dict[tuple[int, int], set[tuple[str, int]]] = {}
    created = 0
    for (user, key, _, _), (message_id, seq, was_created) in zip(plan, results, strict=True):
        by_key.setdefault((user, key), set()).add((message_id, seq))
        created += was_created
    assert all(len(answers) == 1 for answers in by_key.values())  # retries get the original
    n = len(by_key)
    assert created == n
    assert sorted(seq for answers in by_key.values() for _, seq in answers) == list(range(1, n + 1))

    async with chat_ctx.db.read() as conn:
        rows = (await conn.execute(select(chat_messages.c.seq).where(
            chat_messages.c.stream_id == stream_id).order_by(chat_messages.c.seq))).all()
        last = (await conn.execute(select(stream_sessions.c.last_chat_seq).where(
            stream_sessions.c.id == stream_id))).scalar_one()
    assert [row.seq for row in rows] == list(range(1, n + 1)) and last == n

    await chat_ctx.chat.events_published()
    await second_process.chat.events_published()
    topic = stream_topic(stream_id)
    delivered: list[int] = []
    for log in logs.values():
        seqs = log.inserts.get(topic, [])
        assert seqs == sorted(seqs), "events of one process must follow seq order"
        delivered += seqs
    assert sorted(delivered) == list(range(1, n + 1))


@settings(FIXTURES_OK, max_examples=12)
@given(
    data=st.data(),
    n=st.integers(0, 20),
    page_size=st.integers(1, 7),
)
async def test_property_7_chat_history_and_synchronization(
    chat_ctx: AppContext, chat_client: httpx.AsyncClient, chat_stream: Any, data: Any, n: int,
    page_size: int,
) -> None:
    """Property 7: chat history and synchronization — for any history (with deletions) and any
    cursor, paging backwards from the cursor and resyncing forwards after it together return
    every message exactly once, in order, deleted ones as tombstones."""
    stream_id, seller, _ = await chat_stream()
    buyer = Principal("buyer-p7", Role.BUYER)
    sent = await asyncio.gather(
        *(chat_ctx.chat.send(buyer, stream_id, f"m{i}", f"c{i}") for i in range(n))
    )
    ids = {result.message.seq: result.message.id for result in sent}
    bodies = {result.message.seq: result.message.body for result in sent}
    deleted = data.draw(st.sets(st.integers(1, n)) if n else st.just(set()), label="deleted")
    await asyncio.gather(*(chat_ctx.chat.delete(seller, stream_id, ids[seq]) for seq in deleted))
    cursor = data.draw(st.integers(0, n), label="cursor")
    url = f"/api/v1/streams/{stream_id}/chat"

    backwards: list[dict[str, Any]] = []
    before: int | None = cursor + 1
    while before is not None:
        page = (await chat_client.get(url, params={"before_seq": before, "limit": page_size})).json()
        seqs = [m["seq"] for m in page["messages"]]
        assert seqs == sorted(seqs, reverse=True) and len(seqs) <= page_size
        backwards += page["messages"]
        before = page["next_cursor"]
    forwards: list[dict[str, Any]] = []
    after: int | None = cursor
    while after is not None:
        page = (await chat_client.get(url, params={"after_seq": after, "limit": page_size})).json()
        seqs = [m["seq"] for m in page["messages"]]
        assert seqs == sorted(seqs) and len(seqs) <= page_size and page["last_seq"] == n
        forwards += page["messages"]
        after = page["next_cursor"]

    combined = list(reversed(backwards)) + forwards
    assert [m["seq"] for m in combined] == list(range(1, n + 1))
    for message in combined:
        is_deleted = message["seq"] in deleted
        assert message["deleted"] is is_deleted
        assert message["body"] == (None if is_deleted else bodies[message["seq"]])

    newest = (await chat_client.get(url, params={"limit": page_size})).json()
    assert [m["seq"] for m in newest["messages"]] == list(range(n, max(n - page_size, 0), -1))


ACTORS = ["seller", "alice", "bob", "mod"]
BODIES = ["hi", "  hi  ", "hello", "", "\u0000", "<b>bold</b>", "x" * 501, "e\u0301"]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from(ACTORS[:3]), st.integers(0, 3),
                  st.sampled_from(BODIES)),
        st.tuples(st.just("edit"), st.sampled_from(ACTORS), st.integers(1, 6),
                  st.sampled_from(BODIES)),
        st.tuples(st.just("delete"), st.sampled_from(ACTORS), st.integers(1, 6), st.just("")),
        st.tuples(st.just("wait"), st.just(""), st.sampled_from([1, 120, 400]), st.just("")),
    ),
    max_size=25,
)


@settings(FIXTURES_OK, max_examples=25)
@given(steps=ops)
async def test_property_13_chat_persistence_and_consistency(
    chat_ctx: AppContext, chat_client: httpx.AsyncClient, chat_clock: FakeClock, chat_user: Any,
    steps: list[tuple[str, str, Any, str]],
) -> None:
    """Property 13: chat data persistence and consistency — any sequence of sends (with retries
    reusing client_msg_ids, some with different bodies), edits, deletes and waits gives the same
    HTTP answers as a simple reference model, and the stored rows equal the model's state."""
    run = uuid.uuid4().hex[:8]
    people = {name: chat_user("seller" if name == "seller" else "moderator" if name == "mod"
                              else "buyer", f"{name}-{run}") for name in ACTORS}
    seller = people["seller"][0]
    stream = await chat_ctx.streams.create(seller, "p13")
    await chat_ctx.streams.act(seller, stream.id, Action.START)
    model = ChatReferenceModel(seller_id=seller.user_id or "", max_chars=500,
                               edit_window=timedelta(seconds=chat_ctx.settings.chat_edit_window))
    ids: dict[int, str] = {}
    url = f"/api/v1/streams/{stream.id}/chat"
    for kind, actor, arg, body in steps:
        chat_clock.advance(0.001)
        now = chat_clock.now()
        if kind == "wait":
            chat_clock.advance(arg)
            continue
        principal, headers = people[actor]
        user_id = principal.user_id or ""
        if kind == "send":
            expected, seq = model.send(user_id, f"c{arg}", body, now)
            response = await chat_client.post(
                url, json={"body": body, "client_msg_id": f"c{arg}"}, headers=headers)
            assert response.status_code == expected, (kind, actor, arg, body, response.text)
            if seq is not None:
                assert response.json()["seq"] == seq
                ids[seq] = response.json()["id"]
        elif kind == "edit":
            expected = model.edit(user_id, arg, body, now)
            message_id = ids.get(arg, str(uuid.uuid4()))
            response = await chat_client.patch(f"{url}/{message_id}", json={"body": body},
                                               headers=headers)
            assert response.status_code == expected, (kind, actor, arg, body, response.text)
        else:
            expected = model.delete(user_id, principal.is_staff, arg, now)
            message_id = ids.get(arg, str(uuid.uuid4()))
            response = await chat_client.delete(f"{url}/{message_id}", headers=headers)
            assert response.status_code == expected, (kind, actor, arg, response.text)

    async with chat_ctx.db.read() as conn:
        rows = (await conn.execute(
            select(chat_messages.c.seq, chat_messages.c.sender_id, chat_messages.c.client_msg_id,
                   chat_messages.c.body, chat_messages.c.created_at, chat_messages.c.edited_at,
                   chat_messages.c.edited_by, chat_messages.c.deleted_at,
                   chat_messages.c.deleted_by)
            .where(chat_messages.c.stream_id == stream.id).order_by(chat_messages.c.seq)
        )).all()
    assert [tuple(row) for row in rows] == model.state()


async def test_problem_for_overload_is_503_not_a_hang(
    chat_ctx: AppContext, chat_stream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full send queue answers 503 with Retry-After at once instead of queueing forever."""
    stream_id, _, _ = await chat_stream()
    monkeypatch.setattr(chat_ctx.settings, "chat_queue_max", 0)
    with pytest.raises(Problem) as info:
        await chat_ctx.chat.send(Principal("u", Role.BUYER), stream_id, "hi", "c1")
    assert info.value.status == 503 and info.value.headers["Retry-After"] == "1"


async def test_a_refused_message_does_not_fail_its_batch(
    chat_ctx: AppContext, chat_stream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the database refuses one message of a group commit, the others are stored one by
    one and only that send gets 503; a database outage fails the batch with 503 and the writer
    keeps serving afterwards."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    from onair.store import chat as store

    stream_id, _, _ = await chat_stream()
    real_insert = store.insert_messages

    async def refuse_poison(conn: Any, messages: Any) -> None:
        if any(m.body == "poison" for m in messages):
            raise IntegrityError("INSERT", {}, Exception("refused"))
        await real_insert(conn, messages)

    monkeypatch.setattr(store, "insert_messages", refuse_poison)
    users = [Principal(f"batch-{i}", Role.BUYER) for i in range(5)]
    results = await asyncio.gather(
        *(chat_ctx.chat.send(u, stream_id, "poison" if i == 2 else f"ok {i}", f"c{i}")
          for i, u in enumerate(users)),
        return_exceptions=True,
    )
    assert isinstance(results[2], Problem) and results[2].status == 503
    stored = [r for r in results if not isinstance(r, BaseException)]
    assert sorted(r.message.seq for r in stored) == [1, 2, 3, 4]

    async def outage(conn: Any, stream_ids: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(store, "lock_streams", outage)
    with pytest.raises(Problem) as info:
        await chat_ctx.chat.send(users[0], stream_id, "during the outage", "c-out")
    assert info.value.type == "chat-unavailable"
    monkeypatch.undo()
    after = await chat_ctx.chat.send(users[0], stream_id, "during the outage", "c-out")
    assert after.created and after.message.seq == 5
