"""The authorization matrix (issue 10): every role × every REST route and realtime action × stream
state, on SQLite and PostgreSQL, against the rules of ``policy_table.py``.

The scenario is built once per backend (a module-scoped world: an app context, a stream in each
state with a co-host, a demoted co-host, a muted and a banned buyer and one chat message per
user), every case is run and its outcome recorded; the tests below then compare outcomes to the
table, one test per kind of check and per known finding, each listing every mismatch at once.
Realtime cases go over real WebSockets to an in-process uvicorn server on the same context.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import structlog
import uvicorn
import websockets
from fastapi.routing import APIRoute
from starlette.routing import Route

from onair.app import create_app
from onair.auth.jwt import mint_token
from onair.context import AppContext
from onair.domain.clock import FakeClock
from onair.domain.identity import Principal, Role
from onair.domain.streams import Action
from onair.realtime.service import STATE_KEY
from onair.realtime.wiring import server_options
from onair.settings import Settings
from tests.apps import running_context
from tests.conftest import POSTGRES_URL, _create_schema, need, postgres_available
from tests.security import policy_table as T

ON_WORLD_LOOP = pytest.mark.asyncio(loop_scope="module")  # the loop the module-scoped world runs on

SEED = int(os.environ.get("ONAIR_MATRIX_SEED") or secrets.randbelow(2**32))
USER = {role: f"mx-{role}" for role in T.ROLES if role not in (T.ANON, T.SERVICE)}
USER[T.SERVICE] = "service"  # what the service key's principal is called (auth/jwt.py)
AUTHOR = "mx-author"  # sends the "other" message every role looks at
OBSERVER = "mx-observer"  # a plain buyer watching every stream channel
WAIT = 5.0  # generous reply timeout on a busy machine
MAX_LISTED = 200  # mismatches listed in one failure message
SETTLE = 0.6  # time for broker events to reach sockets before they are counted


# --- the world ----------------------------------------------------------------------------------


@dataclass
class StreamScene:
    state: str
    id: str
    own: dict[str, str] = field(default_factory=dict)  # role → id of their message
    other: str = ""  # the author's message
    product: str = ""  # a showcase product the seller attached (issue 14)


@dataclass
class World:
    backend: str
    ctx: AppContext
    http: httpx.AsyncClient
    clock: FakeClock
    scenes: dict[str, StreamScene] = field(default_factory=dict)
    rest: dict[tuple[str, str, str], tuple[T.Expect, Any]] = field(default_factory=dict)
    realtime: dict[tuple[str, str, str], tuple[T.Expect, Any]] = field(default_factory=dict)
    role_changes: dict[str, tuple[T.Expect, Any]] = field(default_factory=dict)
    ws_url: str = ""

    def token(self, role: str) -> str | None:
        if role == T.ANON:
            return None
        if role == T.SERVICE:
            return self.ctx.service_key
        return self.user_token(USER[role], T.TOKEN_ROLE[role] or "buyer")

    def user_token(self, user: str, role: str = "buyer") -> str:
        return mint_token(self.ctx.jwt_secret, user, role, 3600,
                          now=self.clock.now().timestamp())

    def headers(self, role: str) -> dict[str, str]:
        token = self.token(role)
        return {"authorization": f"Bearer {token}"} if token else {}

    def principal(self, role: str) -> Principal:
        if role == T.SERVICE:
            return Principal("service", Role.SERVICE)
        return Principal(USER[role], Role(T.TOKEN_ROLE[role]))


def matrix_settings(backend: dict[str, Any]) -> Settings:
    return Settings(
        _env_file=None, jwt_secret="matrix-secret-" + "x" * 40, reaper_interval=3600,
        dev_auth=False,  # as on any public deployment (issue 10 §4)
        agora_app_id="0123456789abcdef0123456789abcdef",
        agora_app_certificate="fedcba9876543210fedcba9876543210",
        agora_token_rate_limit="100000/minute", chat_rate_burst=100_000,
        realtime_max_messages_per_second=100_000, realtime_max_connections_per_user=100,
        realtime_sweep_interval=0.2, **backend,
    )


async def build_scene(world: World, state: str) -> StreamScene:
    """A stream in ``state`` with every role in place, through the services (fast, no HTTP)."""
    ctx, p = world.ctx, world.principal
    stream = await ctx.streams.create(p(T.SELLER), f"matrix {state}")
    scene = StreamScene(state, stream.id)
    await ctx.tokens.invite(p(T.SELLER), stream.id, USER[T.COHOST])
    await ctx.tokens.invite(p(T.SELLER), stream.id, USER[T.DEMOTED])
    await ctx.tokens.demote(p(T.SELLER), stream.id, USER[T.DEMOTED])
    if state in T.HAS_MESSAGES:
        await ctx.streams.act(p(T.SELLER), stream.id, Action.START)
        for role in T.SIGNED_IN:
            sent = await ctx.chat.send(p(role), stream.id, f"hello from {role}", f"own-{role}")
            scene.own[role] = sent.message.id
        author = await ctx.chat.send(Principal(AUTHOR, Role.BUYER), stream.id, "by the author",
                                     "author")
        scene.other = author.message.id
    from onair.domain import showcase as showcase_rules  # issue 14: one product in the tray
    added = await ctx.showcase.change(p(T.SELLER), stream.id, showcase_rules.Attach(
        f"mx-product-{secrets.token_hex(4)}", {"title": "Matrix mug", "price_minor": 500,
                                              "currency": "EUR",
                                              "product_url": "https://shop.example/mug"}))
    scene.product = added["products"][0]["id"]
    await ctx.chat.sanction(p(T.SELLER), stream.id, USER[T.MUTED], "mute", 3600, "matrix")
    await ctx.chat.sanction(p(T.SELLER), stream.id, USER[T.BANNED], "ban", None, "matrix")
    if state == T.PAUSED:
        await ctx.streams.act(p(T.SELLER), stream.id, Action.PAUSE)
    elif state == T.ENDED:
        await ctx.streams.act(p(T.SELLER), stream.id, Action.END, "matrix")
    return scene


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    data_dir = tmp_path_factory.mktemp(f"matrix-{request.param}")
    backend: dict[str, Any] = {"data_dir": data_dir}
    schema = None
    if request.param == "postgresql":
        need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
        schema = f"mx_{secrets.token_hex(6)}"
        await _create_schema(schema)
        backend.update(database_url=POSTGRES_URL, database_schema=schema)
    clock = FakeClock()
    logging_before = structlog.get_config()
    # ~4,000 requests: info lines for each would cost more than the requests themselves
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        cache_logger_on_first_use=False)
    try:
        async with running_context(matrix_settings(backend), clock) as ctx:
            # The matrix asks who may do what on an ended stream, not when its channels close
            # (tests/integration/test_stream_end_cleanup.py and the e2e do): past the grace
            # every sweep closes channels joined to an ended stream, so on a loaded machine a row
            # slower than a sweep saw its channel closed. The grace outlasts the run instead.
            ctx.realtime.events.ended_close_delay = 24 * 3600
            app = create_app(ctx.settings, ctx=ctx, run_reaper=False)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://onair.test") as http:
                w = World(request.param, ctx, http, clock)
                await run_rest_matrix(w)
                async with serving(app, ctx) as port:
                    w.ws_url = f"ws://127.0.0.1:{port}/realtime/v1/websocket"
                    await run_realtime_matrix(w)
                    await run_role_changes(w)
                yield w
    finally:
        structlog.configure(**logging_before)
        if schema is not None:
            await _create_schema(schema, drop=True)


# --- REST -----------------------------------------------------------------------------------------


def fill(case: T.RestCase, scene: StreamScene | None, role: str) -> str:
    path = case.path
    if scene is not None:
        path = path.replace("{stream_id}", scene.id).replace("{product_id}", scene.product)
        if case.target:
            message = scene.own.get(role, scene.other) if case.target == "own" else scene.other
            path = path.replace("{message_id}", message or "0190a000-0000-7000-8000-000000000000")
    if case.user:
        path = path.replace("{user_id}", USER[T.COHOST] if case.user == "cohost" else "mx-victim")
    return path.replace("{topic}", "matrix").replace("{event}", "ping")


def body_for(case: T.RestCase, n: int) -> Any:
    if case.label == "POST /api/v1/streams/{stream_id}/chat":
        return {"body": f"matrix message {n}", "client_msg_id": f"mx-{n}"}
    return case.body


async def call(world: World, case: T.RestCase, scene: StreamScene | None, role: str,
               n: int) -> httpx.Response:
    body = body_for(case, n)
    return await world.http.request(case.method, fill(case, scene, role),
                                    headers=world.headers(role),
                                    json=body if body is not None else None)


def matches(expected: int | str, got: int) -> bool:
    return 200 <= got < 300 if expected == T.OK else expected == got


async def run_rest_case(world: World, case: T.RestCase, state: str, n: Any) -> None:
    for role in T.ROLES:
        scene = world.scenes.get(state)
        expect = case.rule(role, state if state != "-" else T.LIVE)
        response = await call(world, case, scene, role, next(n))
        got: Any = response.status_code
        if not matches(expect.outcome, got):
            got = f"{got} {response.text[:160]}"
        world.rest[(case.label, role, state)] = (expect, got)
        if case.resets and 200 <= response.status_code < 300 and scene is not None:
            world.scenes[state] = await build_scene(world, state)


async def run_rest_matrix(world: World) -> None:
    n = itertools.count()
    scenes = await asyncio.gather(*(build_scene(world, state) for state in T.STATES))
    world.scenes.update(zip(T.STATES, scenes))

    async def one_state(state: str) -> None:  # the states' streams are independent
        for case in T.REST_CASES:
            if case.per_state:
                await run_rest_case(world, case, state, n)

    await asyncio.gather(*(one_state(state) for state in T.STATES))
    for case in T.REST_CASES:
        if not case.per_state:
            await run_rest_case(world, case, "-", n)


# --- realtime -----------------------------------------------------------------------------------


class Socket:
    """A Phoenix (vsn 2.0.0) client that records everything it receives."""

    def __init__(self, ws: Any, name: str) -> None:
        self.ws = ws
        self.name = name
        self.inbox: list[list[Any]] = []
        self._refs = itertools.count(1)
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.closed = False

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.inbox.append(json.loads(raw))
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._arrived.set()

    async def until(self, find: Any, timeout: float = WAIT) -> Any:
        """The first non-None ``find()`` as messages arrive, or None after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._arrived.clear()
            found = find()
            if found is not None or self.closed or loop.time() >= deadline:
                return found
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
            except TimeoutError:
                pass

    async def close(self) -> None:
        await self.ws.close()
        await self._reader

    async def push(self, join_ref: str | None, topic: str, event: str, payload: Any) -> str:
        ref = str(next(self._refs))
        await self.ws.send(json.dumps([join_ref or ref, ref, topic, event, payload]))
        return ref

    async def reply(self, ref: str, timeout: float = WAIT) -> dict[str, Any] | None:
        def find() -> dict[str, Any] | None:
            for msg in reversed(self.inbox):
                if msg[1] == ref and msg[3] == "phx_reply":
                    return msg[4]  # type: ignore[no-any-return]
            return None
        return await self.until(find, timeout)  # type: ignore[no-any-return]

    async def join(self, topic: str, token: str | None, config: dict[str, Any]) -> tuple[str, str]:
        """(join_ref, "ok"/"error"/"timeout")."""
        payload: dict[str, Any] = {"config": config}
        if token:
            payload["access_token"] = token
        ref = await self.push(None, topic, "phx_join", payload)  # a join's join_ref is its ref
        reply = await self.reply(ref)
        return ref, (reply or {}).get("status", "timeout")

    def system(self, topic: str) -> str | None:
        for msg in self.inbox:
            if msg[2] == topic and msg[3] == "system" and msg[4].get("extension") == "postgres_changes":
                return str(msg[4].get("status"))
        return None

    def on(self, topic: str, event: str) -> list[list[Any]]:
        return [m for m in self.inbox if m[2] == topic and m[3] == event]


@asynccontextmanager
async def serving(app: Any, ctx: AppContext) -> AsyncIterator[int]:
    """The app under uvicorn with onair's realtime WebSocket protocol, on the test's loop and
    on the already running context (lifespan off: its realtime service is handed over as the
    lifespan would)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning",
                            **server_options(ctx.settings))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    server.lifespan.state[STATE_KEY] = ctx.realtime
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def connect(world: World, name: str) -> Socket:
    ws = await websockets.connect(f"{world.ws_url}?apikey={world.ctx.anon_key}&vsn=2.0.0",
                                  max_size=None)
    return Socket(ws, name)


def remaining(deadline: float) -> float:
    return max(0.0, deadline - asyncio.get_running_loop().time())


def random_casing(name: str, rnd: random.Random) -> str:
    while True:
        variant = "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in name)
        if variant != name:
            return variant


def stream_topic(scene: StreamScene) -> str:
    return f"realtime:stream:{scene.id}"


def changes_topic(state: str, table: str, filtered: bool) -> str:
    return f"realtime:mx-{state}-{'all' if table == '*' else table}-{'f' if filtered else 'u'}"


def binding(scene: StreamScene, table: str, filtered: bool) -> dict[str, Any]:
    b: dict[str, Any] = {"event": "*", "schema": "public", "table": table}
    if filtered:
        b["filter"] = f"{T.CHANGE_TABLES.get(table, 'stream_id')}=eq.{scene.id}"
    return b


PUBLIC_CONFIG = {"broadcast": {"ack": True, "self": False}, "private": False}


def delivered(observer: Socket, mark: str) -> bool:
    return any(m[3] == "broadcast" and isinstance(m[4].get("payload"), dict)
               and m[4]["payload"].get("mx") == mark for m in observer.inbox)


def broadcast_outcome(status: Any, got: bool, ok_status: Any) -> str:
    if ok_status == 202 and status == 202:  # REST: refusals are silent, as in Supabase
        return T.DELIVERED if got else T.NOT_DELIVERED
    if status == ok_status and got:
        return T.DELIVERED
    if status != ok_status and not got:
        return T.NOT_DELIVERED
    return f"reply/status {status}, {'delivered' if got else 'not delivered'}"


def marked(user: str | None, mark: str) -> dict[str, str]:
    """A broadcast payload the observer can recognise; a ``webrtc:signal`` must also name its
    sender's own peer (realtime/signals.py, tested apart in test_forged_signal_sender.py)."""
    return {"mx": mark, "from": f"host:{user}:mx"}


async def rest_broadcast(world: World, role: str, scene: StreamScene, event: str,
                         mark: str) -> int:
    headers = world.headers(role) or {"apikey": world.ctx.anon_key}
    response = await world.http.post(
        f"/realtime/v1/api/broadcast/stream:{scene.id}/events/{event}", headers=headers,
        json=marked(USER.get(role), mark))
    return response.status_code


async def probe_role(world: World, role: str, sock: Socket, rnd: random.Random,
                     pending: list[tuple[tuple[str, str, str], T.Expect, Any]]) -> None:
    token = world.token(role)
    for state in T.STATES:
        scene = world.scenes[state]
        topic = stream_topic(scene)

        def record(case: T.RealtimeCase, got: Any, state: str = state) -> None:
            world.realtime[(case.label, role, state)] = (case.rule(role, state), got)

        for case in T.REALTIME_CASES:
            if case.action == "join private":
                join_ref, status = await sock.join(topic, token, {"private": True})
                record(case, T.JOINED if status == "ok" else T.REFUSED if status == "error"
                       else status)
                if status == "ok":
                    await sock.reply(await sock.push(join_ref, topic, "phx_leave", {}))
        public_ref, status = await sock.join(
            topic, token, {**PUBLIC_CONFIG, "presence": {"key": role, "enabled": True}})
        joined = status == "ok"
        wait = WAIT if joined else 0.0  # a channel never joined gets no replies at all
        acks: list[tuple[T.RealtimeCase, str, str, str]] = []
        for case in T.REALTIME_CASES:
            if case.action == "join public":
                record(case, T.JOINED if joined else T.REFUSED if status == "error" else status)
            elif case.action == "presence track":
                ref = await sock.push(public_ref, topic, "presence",
                                      {"type": "presence", "event": "track",
                                       "payload": {"name": role}})
                reply = await sock.reply(ref, wait)
                record(case, T.TRACKED if reply and reply.get("status") == "ok"
                       else T.NOT_DELIVERED)
            elif case.action == "broadcast":
                event = case.event if case.canonical else random_casing(case.event, rnd)
                mark = f"{role}|{state}|{case.label}"
                if case.rest:
                    got: Any = await rest_broadcast(world, role, scene, event, mark)
                    ok_status: Any = 202
                    pending.append(((case.label, role, state), case.rule(role, state),
                                    (got, ok_status, mark, event)))
                else:  # sent now, acks collected below: one round trip for all of them
                    ref = await sock.push(public_ref, topic, "broadcast",
                                          {"type": "broadcast", "event": event,
                                           "payload": marked(USER.get(role), mark)})
                    acks.append((case, ref, mark, event))
            elif case.action == "changes join":
                ctopic = changes_topic(state, case.table, case.filtered)
                await sock.join(ctopic, token,
                                {"postgres_changes": [binding(scene, case.table, case.filtered)]})
                system = await sock.until(lambda: sock.system(ctopic))  # noqa: B023
                record(case, T.JOINED if system == "ok" else T.REFUSED if system == "error"
                       else f"no system reply ({system})")
        for case, ref, mark, event in acks:
            reply = await sock.reply(ref, wait)
            pending.append(((case.label, role, state), case.rule(role, state),
                            ((reply or {}).get("status"), "ok", mark, event)))


async def trigger(world: World, state: str, secrets_: dict[str, tuple[str, str]]) -> None:
    """Row changes of every table (as far as the state allows), a sanction, then a transition."""
    scene, seller = world.scenes[state], world.headers(T.SELLER)
    base = f"/api/v1/streams/{scene.id}"
    nonce = secrets.token_hex(4)
    original, edited = f"orig-{state}-{nonce}", f"edit-{state}-{nonce}"
    secrets_[state] = (original, edited)
    calls: list[tuple[str, str, dict[str, str], Any]] = []
    if state in T.CHAT_OPEN:
        sent = await world.http.post(base + "/chat", headers=seller,
                                     json={"body": original, "client_msg_id": f"trig-{nonce}"})
        assert sent.status_code == 201, sent.text
        mid = sent.json()["id"]
        calls += [("PATCH", f"{base}/chat/{mid}", seller, {"body": edited}),
                  ("DELETE", f"{base}/chat/{mid}", seller, None)]
    if state != T.ENDED:
        viewer = {"authorization": f"Bearer {world.user_token('mx-trigger-viewer')}"}
        calls += [("POST", f"{base}/viewers", viewer, None),
                  ("POST", f"{base}/cohosts", seller, {"user_id": "mx-trigger-invitee"})]
    calls.append(("POST", f"{base}/chat/sanctions", seller,
                  {"user_id": "mx-trigger-victim", "kind": "mute", "duration_seconds": 60}))
    move = {T.SCHEDULED: "start", T.LIVE: "pause", T.PAUSED: "resume"}.get(state)
    if move:
        calls.append(("POST", f"{base}/{move}", seller, None))
    for method, path, headers, body in calls:
        response = await world.http.request(method, path, headers=headers, json=body)
        assert 200 <= response.status_code < 300, (method, path, response.text)


def leaked(sock: Socket, state: str, secrets_: dict[str, tuple[str, str]]) -> list[str]:
    """Change events that carry a deleted body or an edited message's original text."""
    original, edited = secrets_.get(state, ("\0", "\0"))
    out = []
    for msg in sock.inbox:
        if msg[3] != "postgres_changes" or f"-{state}-" not in msg[2]:
            continue
        data = msg[4].get("data", {})
        record = json.dumps(data.get("record") or {})
        old = json.dumps(data.get("old_record") or {})
        deleted = bool((data.get("record") or {}).get("deleted_at"))
        if original in old or (data.get("type") != "INSERT" and original in record) \
                or edited in old or (deleted and edited in record):
            out.append(f"{data.get('type')} record={record[:120]} old_record={old[:120]}")
    return out


async def run_realtime_matrix(world: World) -> None:
    observer = await connect(world, "observer")
    sockets: dict[str, Socket] = {}
    try:
        for scene in world.scenes.values():
            _, status = await observer.join(stream_topic(scene), world.user_token(OBSERVER),
                                            {"private": False})
            assert status == "ok", "the observer could not join"
        pending: list[tuple[tuple[str, str, str], T.Expect, Any]] = []
        for role in T.ROLES:
            sockets[role] = await connect(world, role)
        # the roles probe side by side, each with its own seeded casings
        await asyncio.gather(*(probe_role(world, role, sockets[role], random.Random(SEED + i),
                                          pending) for i, role in enumerate(T.ROLES)))
        secrets_: dict[str, tuple[str, str]] = {}
        for state in T.STATES:
            await trigger(world, state, secrets_)
        await world.ctx.chat.events_published()
        await asyncio.sleep(SETTLE)  # what must not arrive has had its chance
        # what must arrive may take longer on a busy machine: waited for, up to WAIT in all
        deadline = asyncio.get_running_loop().time() + WAIT
        for _, expect, (_, _, mark, _) in pending:
            if expect.outcome == T.DELIVERED:
                await observer.until(lambda: delivered(observer, mark) or None,  # noqa: B023
                                     remaining(deadline))
        for role, sock in sockets.items():
            for state in T.STATES:
                for case in T.REALTIME_CASES:
                    if case.action == "changes rows" and case.rule(role, state).outcome == T.ROWS:
                        ctopic = changes_topic(state, case.table, case.filtered)
                        await sock.until(lambda: sock.on(ctopic, "postgres_changes") or None,  # noqa: B023
                                         remaining(deadline))
        for key, expect, (got, ok_status, mark, event) in pending:
            outcome = broadcast_outcome(got, delivered(observer, mark), ok_status)
            if outcome != expect.outcome:
                outcome += f" (sent as {event!r})"
            world.realtime[key] = (expect, outcome)
        for role, sock in sockets.items():
            for state in T.STATES:
                topic = stream_topic(world.scenes[state])
                for case in T.REALTIME_CASES:
                    expect = case.rule(role, state)
                    if case.action == "changes rows":
                        ctopic = changes_topic(state, case.table, case.filtered)
                        rows = sock.on(ctopic, "postgres_changes")
                        world.realtime[(case.label, role, state)] = (
                            expect, T.ROWS if rows else T.NO_ROWS)
                    elif case.action == "no deleted or pre-edit chat bodies":
                        found = leaked(sock, state, secrets_)
                        world.realtime[(case.label, role, state)] = (
                            expect, "clean" if not found else "leaked: " + "; ".join(found))
                    elif case.action == "chat_sanction tells who":
                        told = any(m[4].get("event") == "chat_sanction"
                                   and "user_id" in (m[4].get("payload") or {})
                                   for m in sock.on(topic, "broadcast"))
                        got = "any" if expect.outcome == "any" else "told" if told else "not told"
                        world.realtime[(case.label, role, state)] = (expect, got)
    finally:
        for sock in (observer, *sockets.values()):
            await sock.close()


# --- role changes on an open socket ---------------------------------------------------------------


async def run_role_changes(world: World) -> None:
    scene = await build_scene(world, T.LIVE)
    topic, base = stream_topic(scene), f"/api/v1/streams/{scene.id}"
    seller = world.headers(T.SELLER)
    cohost_user, buyer_user, victim_user = USER[T.COHOST], "mx-rc-buyer", "mx-rc-victim"
    viewers_topic, chat_topic = "realtime:mx-rc-viewers", "realtime:mx-rc-chat"
    muted_user, plain_user = "mx-rc-muted", "mx-rc-plain"
    socks = {name: await connect(world, name)
             for name in ("observer", "cohost", "buyer", "victim", "muted", "plain")}
    try:
        o, c, b, v = socks["observer"], socks["cohost"], socks["buyer"], socks["victim"]
        mu, pl = socks["muted"], socks["plain"]
        assert (await o.join(topic, world.user_token(OBSERVER), {}))[1] == "ok"
        c_ref, status = await c.join(topic, world.user_token(cohost_user), PUBLIC_CONFIG)
        assert status == "ok"
        await c.join(viewers_topic, world.user_token(cohost_user),
                     {"postgres_changes": [binding(scene, "stream_viewers", True)]})
        b_ref, status = await b.join(topic, world.user_token(buyer_user), PUBLIC_CONFIG)
        assert status == "ok"
        assert (await v.join(topic, world.user_token(victim_user), PUBLIC_CONFIG))[1] == "ok"
        await v.join(chat_topic, world.user_token(victim_user),
                     {"postgres_changes": [binding(scene, "chat_messages", True)]})
        mu_ref, status = await mu.join(topic, world.user_token(muted_user), PUBLIC_CONFIG)
        assert status == "ok"
        pl_ref, status = await pl.join(topic, world.user_token(plain_user), PUBLIC_CONFIG)
        assert status == "ok"

        user_of = {"cohost": cohost_user, "buyer": buyer_user, "muted": muted_user, "plain": plain_user}

        async def host_event(sock: Socket, join_ref: str, mark: str,
                             event: str = "webrtc:signal") -> str:
            payload = marked(user_of[sock.name], mark)
            ref = await sock.push(join_ref, topic, "broadcast",
                                  {"type": "broadcast", "event": event, "payload": payload})
            reply = await sock.reply(ref)
            if (reply or {}).get("status") == "ok":
                await o.until(lambda: delivered(o, mark) or None)
            else:
                await asyncio.sleep(SETTLE)
            return broadcast_outcome((reply or {}).get("status"), delivered(o, mark), "ok")

        baseline = await host_event(c, c_ref, "rc-baseline")
        assert baseline == T.DELIVERED, f"harness: a co-host's host event before demotion: {baseline}"
        for sock, ref in ((mu, mu_ref), (pl, pl_ref)):
            baseline = await host_event(sock, ref, f"rc-baseline-{sock.name}", T.ORDINARY_EVENT)
            assert baseline == T.DELIVERED, f"harness: {sock.name}'s broadcast before: {baseline}"
        for method, path, body in (("DELETE", f"{base}/cohosts/{cohost_user}", None),
                                   ("POST", f"{base}/cohosts", {"user_id": buyer_user}),
                                   ("POST", f"{base}/chat/sanctions",
                                    {"user_id": victim_user, "kind": "ban"}),
                                   ("POST", f"{base}/chat/sanctions",
                                    {"user_id": muted_user, "kind": "mute",
                                     "duration_seconds": 600})):
            response = await world.http.request(method, path, headers=seller, json=body)
            assert 200 <= response.status_code < 300, response.text
        await asyncio.sleep(1.0)  # issue 10 §5: role changes take effect within a second
        marks = {name: len(s.inbox) for name, s in socks.items()}
        got = {
            "demoted co-host: webrtc:signal refused": await host_event(c, c_ref, "rc-demoted"),
            "invited buyer: webrtc:signal delivered": await host_event(b, b_ref, "rc-invited"),
            "muted buyer: broadcast refused": await host_event(mu, mu_ref, "rc-muted",
                                                               T.ORDINARY_EVENT),
        }
        viewer = {"authorization": f"Bearer {world.user_token('mx-rc-viewer')}"}
        assert (await world.http.post(f"{base}/viewers", headers=viewer)).status_code == 200
        sent = await world.http.post(f"{base}/chat", headers=seller,
                                     json={"body": "after the ban", "client_msg_id": "rc-after"})
        assert sent.status_code == 201, sent.text
        await world.ctx.chat.events_published()
        await asyncio.sleep(SETTLE)
        got["demoted co-host: stream_viewers rows stop"] = (
            T.ROWS if any(m[2] == viewers_topic and m[3] == "postgres_changes"
                          for m in c.inbox[marks["cohost"]:]) else T.NO_ROWS)
        closed = any(m[2] == topic and m[3] in ("phx_close", "system") for m in v.inbox)
        got["banned user: channel closed"] = "closed" if closed else "still open"
        got["banned user: receives nothing more"] = (
            T.ROWS if any(m[3] == "postgres_changes" for m in v.inbox[marks["victim"]:])
            else T.NO_ROWS)
        ended = await world.http.post(f"{base}/end", headers=seller, json={"reason": "matrix"})
        assert ended.status_code == 200, ended.text
        await asyncio.sleep(1.0)
        got["stream ended: a buyer's broadcast refused"] = await host_event(
            pl, pl_ref, "rc-ended", T.ORDINARY_EVENT)
        for key, expect in T.ROLE_CHANGES.items():
            world.role_changes[key] = (expect, got.get(key, "not measured"))
    finally:
        for sock in socks.values():
            await sock.close()


# --- the checks -----------------------------------------------------------------------------------


def groups_of(expects: list[T.Expect]) -> list[Any]:
    findings = sorted({e.open_finding for e in expects if e.open_finding})
    params = [pytest.param(None, id="as-the-code-stands")]
    params += [pytest.param(f, id=f, marks=pytest.mark.xfail(strict=True,
                                                             reason=T.FINDINGS[f]))
               for f in findings]
    return params


def all_states(case: Any) -> list[T.Expect]:
    return [case.rule(role, state) for role in T.ROLES for state in T.STATES]


REST_GROUPS = groups_of([e for c in T.REST_CASES for e in all_states(c)])
REALTIME_GROUPS = groups_of([e for c in T.REALTIME_CASES for e in all_states(c)])
ROLE_CHANGE_GROUPS = groups_of(list(T.ROLE_CHANGES.values()))


def mismatches(rows: dict[Any, tuple[T.Expect, Any]], group: str | None) -> list[str]:
    out = []
    for key, (expect, got) in rows.items():
        if expect.open_finding != group:
            continue
        ok = matches(expect.outcome, got) if isinstance(got, int) else got == expect.outcome
        if not ok:
            where = " | ".join(key) if isinstance(key, tuple) else key
            out.append(f"  {where}: expected {expect.outcome}, got {got}")
    return out


def verdict(world: World, kind: str, rows: dict[Any, Any], group: str | None) -> None:
    selected = [k for k, (e, _) in rows.items() if e.open_finding == group]
    assert selected, f"no {kind} rows for {group}"
    bad = mismatches(rows, group)
    shown = bad[:MAX_LISTED] + ([f"  … and {len(bad) - MAX_LISTED} more"]
                                if len(bad) > MAX_LISTED else [])
    assert not bad, (f"{kind} matrix on {world.backend} (seed {SEED}): {len(bad)} of "
                     f"{len(selected)} rows differ from tests/security/policy_table.py\n"
                     + "\n".join(shown))


@pytest.mark.parametrize("group", REST_GROUPS)
@ON_WORLD_LOOP
async def test_rest_matrix(world: World, group: str | None) -> None:
    verdict(world, "REST", world.rest, group)


@pytest.mark.parametrize("group", REALTIME_GROUPS)
@ON_WORLD_LOOP
async def test_realtime_matrix(world: World, group: str | None) -> None:
    verdict(world, "realtime", world.realtime, group)


@pytest.mark.parametrize("group", ROLE_CHANGE_GROUPS)
@ON_WORLD_LOOP
async def test_role_changes_on_open_socket(world: World, group: str | None) -> None:
    verdict(world, "role-change", world.role_changes, group)


# Not routes of the API: static files (a mount).
NOT_IN_TABLE = {"/static"}


def test_every_route_is_in_the_table(tmp_path: Path) -> None:
    """A new route without a row in the policy table fails here, as does a row for a route that
    no longer exists."""
    app = create_app(Settings(_env_file=None, data_dir=tmp_path, jwt_secret="x" * 48))
    routes = set()
    for route in app.routes:
        if isinstance(route, (APIRoute, Route)):
            routes |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
        else:
            assert route.path in NOT_IN_TABLE, f"unexpected kind of route: {route!r}"
    table = {(case.method, case.path) for case in T.REST_CASES}
    assert not routes - table, f"routes without a row in policy_table.py: {sorted(routes - table)}"
    assert not table - routes, f"rows for routes the app does not have: {sorted(table - routes)}"
