"""Two processes, one failure (issue 12 §1): `onair serve --workers 2` on PostgreSQL + a Redis of
the test's own, a few hundred realtime subscribers spread over both workers and a steady chat
load; then (a) one worker is killed with SIGKILL and (b) Redis is killed and started again.

The load generator is this test's event loop (raw websockets, Phoenix vsn 1.0.0, orjson): it
shares the machine's 2 cores with the server, so it stays lean — a subscriber parses each frame
once and keeps a set of seqs. Each subscriber behaves like the web client: it reconnects with
exponential backoff and jitter, and resyncs (``GET …/chat?after_seq=``) after every (re)join, on
a ``system`` message (live delivery lost / restored) and when a live row skips a seq (a row
committed and acknowledged by the killed worker may never have been published: nobody is left
to say so, the next row shows the gap). Checked:

* every acknowledged message is in every subscriber's view, exactly once (the view is by seq, and
  no socket receives one seq twice live); nothing is in a view that is not in the database;
* the killed worker's clients reconnect (to the survivor, or its replacement) and the worker is
  replaced; presence converges (one meta per tracked key, the dead worker's gone) within the
  presence TTL (+ one heartbeat and polling slack);
* during the Redis outage no process dies, every channel is told in-band (``system`` error, then
  ok once the node's broker link is back), and joins resume.

Prints one JSON line (times to recover, messages resynced): the README's "Failure drills".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from onair.auth.jwt import mint_key, mint_token
from onair.domain.identity import Role
from tests.conftest import POSTGRES_URL, _create_schema, need, postgres_available
from tests.integration.test_app_redis import PrivateRedis, private_redis  # noqa: F401 (fixture)
from tests.integration.test_serve_workers import children_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SUBSCRIBERS = int(os.environ.get("ONAIR_CHAOS_SUBSCRIBERS", "240"))
TRACKERS = 16  # subscribers that also track presence (and watch everybody's)
SENDERS = 4
CHAT_PER_SECOND = 20.0
PRESENCE_TTL = 3.0
PRESENCE_HEARTBEAT = 0.5
REDIS_DOWN_SECONDS = 1.0
LOST = "Live delivery interrupted"
RESTORED = "Live delivery restored"


class Subscriber:
    """One realtime client: a socket, one channel, a view of the chat by seq."""

    def __init__(self, n: int, ws_url: str, topic: str, stream_id: str, http: httpx.AsyncClient,
                 token: str | None, key: str | None) -> None:
        self.n, self.ws_url, self.topic, self.stream_id, self.http = n, ws_url, topic, stream_id, http
        self.token, self.key = token, key
        self.seen: set[int] = set()
        self.contiguous = 0  # every seq 1..contiguous is in the view
        self.live_duplicates = 0  # a seq one socket received twice
        self.resynced = 0  # rows the view got only through a resync
        self.resyncs = 0
        self.joins: list[float] = []  # monotonic times of join ok
        self.drops: list[float] = []  # monotonic times a socket closed under it
        self.system: list[tuple[float, str, str]] = []
        self.last_error = ""
        self.refused = 0  # joins refused (broker unavailable): retried with backoff
        self.presence: dict[str, set[str]] = {}
        self.joined = asyncio.Event()
        self._resync_wanted = asyncio.Event()
        self._stop = False
        self._ref = itertools.count(1)

    # -- view ------------------------------------------------------------------------------------

    def _add(self, seq: int) -> bool:
        if seq in self.seen:
            return False
        self.seen.add(seq)
        while self.contiguous + 1 in self.seen:
            self.contiguous += 1
        return True

    async def _resync_loop(self) -> None:
        while not self._stop:
            await self._resync_wanted.wait()
            self._resync_wanted.clear()
            await asyncio.sleep(random.random() * 0.3)  # jitter: a whole channel is told at once
            try:
                await self._resync()
            except (httpx.HTTPError, ValueError, KeyError):
                self._resync_wanted.set()  # a busy or restarting server: again, a bit later
                await asyncio.sleep(0.2)

    async def _resync(self) -> None:
        self.resyncs += 1
        after = self.contiguous
        while True:
            r = await self.http.get(f"/api/v1/streams/{self.stream_id}/chat",
                                    params={"after_seq": after, "limit": 1000})
            if r.status_code != 200:
                self._resync_wanted.set()  # a busy or restarting server: again
                await asyncio.sleep(0.2)
                return
            page = r.json()
            for message in page["messages"]:
                if self._add(int(message["seq"])):
                    self.resynced += 1
            if page["next_cursor"] is None:
                return
            after = int(page["next_cursor"])

    # -- socket ----------------------------------------------------------------------------------

    async def run(self) -> None:
        resyncer = asyncio.create_task(self._resync_loop())
        delay = 0.05
        try:
            while not self._stop:
                try:
                    async with websockets.connect(self.ws_url, open_timeout=10, close_timeout=1,
                                                  max_queue=None) as ws:
                        if await self._session(ws):
                            delay = 0.05
                except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                    self.last_error = repr(exc)
                if self._stop:
                    return
                self.drops.append(time.monotonic())
                self.joined.clear()
                await asyncio.sleep(delay * (0.5 + random.random()))  # backoff with jitter
                delay = min(delay * 2, 1.0)
        finally:
            resyncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resyncer

    async def _send(self, ws: Any, event: str, payload: dict[str, Any], join_ref: str | None) -> str:
        ref = str(next(self._ref))
        await ws.send(orjson.dumps({"topic": self.topic, "event": event, "payload": payload,
                                    "ref": ref, "join_ref": join_ref}).decode())
        return ref

    async def _session(self, ws: Any) -> bool:
        """Join, then read until the socket closes; False if the join was refused."""
        config: dict[str, Any] = {"postgres_changes": [{
            "event": "INSERT", "schema": "public", "table": "chat_messages",
            "filter": f"stream_id=eq.{self.stream_id}"}]}
        payload: dict[str, Any] = {"config": config}
        if self.key is not None:
            config["presence"] = {"key": self.key, "enabled": True}
        if self.token is not None:
            payload["access_token"] = self.token
        join_ref = await self._send(ws, "phx_join", payload, None)
        live: set[int] = set()  # seqs this socket received
        beat = time.monotonic()
        while not self._stop:
            try:
                async with asyncio.timeout(10):  # not wait_for: on 3.11 it can swallow a cancel
                    raw = await ws.recv()
            except TimeoutError:
                raw = None
            if time.monotonic() - beat > 10:  # Phoenix heartbeat, well within the server's timeout
                beat = time.monotonic()
                await ws.send(orjson.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {},
                                            "ref": str(next(self._ref))}).decode())
            if raw is None:
                continue
            msg = orjson.loads(raw)
            event = msg["event"]
            if event == "postgres_changes":
                seq = int(msg["payload"]["data"]["record"]["seq"])
                if seq in live:
                    self.live_duplicates += 1
                live.add(seq)
                self._add(seq)
                if seq > self.contiguous:
                    self._resync_wanted.set()  # a gap behind this row: fetch what is missing
            elif event == "phx_reply" and msg["ref"] == join_ref:
                if msg["payload"]["status"] != "ok":
                    self.refused += 1
                    return False
                self.presence = {}
                if self.key is not None:
                    await self._send(ws, "presence", {"type": "presence", "event": "track",
                                                      "payload": {"n": self.n}}, join_ref)
                if self.joins:
                    self._resync_wanted.set()  # whatever was committed while we were away
                self.joins.append(time.monotonic())
                self.joined.set()
            elif event == "system":
                p = msg["payload"]
                self.system.append((time.monotonic(), p.get("status", ""), p.get("message", "")))
                if p.get("status") == "ok":
                    self._resync_wanted.set()
            elif event == "presence_state":
                self.presence = {k: {m["phx_ref"] for m in v["metas"]} for k, v in msg["payload"].items()}
            elif event == "presence_diff":
                for k, v in msg["payload"]["leaves"].items():
                    refs = self.presence.get(k, set()) - {m["phx_ref"] for m in v["metas"]}
                    if refs:
                        self.presence[k] = refs
                    else:
                        self.presence.pop(k, None)
                for k, v in msg["payload"]["joins"].items():
                    self.presence.setdefault(k, set()).update(m["phx_ref"] for m in v["metas"])
            elif event in ("phx_close", "phx_error"):
                return True
        return True

    def stop(self) -> None:
        self._stop = True


class Chat:
    """Steady sends from a few buyers; a send is retried with its client_msg_id until it is
    acknowledged (201, or 200 for a retry the server had already stored)."""

    def __init__(self, base: str, stream_id: str, secret: str) -> None:
        self.base, self.stream_id, self.secret = base, stream_id, secret
        self.acked: dict[str, int] = {}  # client_msg_id -> seq
        self.retries = 0
        self.latencies: list[float] = []  # seconds from first attempt to acknowledgement
        self.running = True

    async def sender(self, k: int) -> None:
        headers = {"authorization": f"Bearer {mint_token(self.secret, f'buyer-{k}', Role.BUYER, 3600)}"}
        period = SENDERS / CHAT_PER_SECOND
        async with httpx.AsyncClient(base_url=self.base, headers=headers, timeout=5) as http:
            for i in itertools.count():
                if not self.running:
                    return
                started = time.monotonic()
                msg_id = f"s{k}-{i}"
                while True:
                    try:
                        r = await http.post(f"/api/v1/streams/{self.stream_id}/chat",
                                            json={"body": f"m {k} {i}", "client_msg_id": msg_id})
                    except httpx.TransportError:
                        r = None
                    if r is not None and r.status_code in (200, 201):
                        self.acked[msg_id] = int(r.json()["seq"])
                        self.latencies.append(time.monotonic() - started)
                        break
                    assert r is None or r.status_code in (429, 502, 503), r.text
                    self.retries += 1
                    await asyncio.sleep(0.1)
                await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


async def wait_until(condition: Any, what: str, timeout: float, detail: Any = None) -> float:
    """Seconds it took until ``condition()``; fails after ``timeout`` (saying ``detail()``)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}"
                                 + (f": {detail()}" if detail is not None else ""))
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def states(subs: list[Subscriber]) -> dict[str, int]:
    return {"joined": sum(s.joined.is_set() for s in subs), "refused": sum(s.refused for s in subs),
            "drops": sum(len(s.drops) for s in subs), "joins": sum(len(s.joins) for s in subs),
            "errors": len({s.last_error for s in subs}), "error": subs[-1].last_error[:300]}


def presence_views(subs: list[Subscriber]) -> list[dict[str, Any]]:
    """What the trackers that have not converged see (at most five of them)."""
    keys = {f"viewer-{s.n}" for s in subs if s.key is not None}
    return [{"tracker": s.n, "joined": s.joined.is_set(), "missing": sorted(keys - s.presence.keys()),
             "extra": sorted(s.presence.keys() - keys),
             "metas": {k: len(v) for k, v in s.presence.items() if len(v) != 1},
             "drops": len(s.drops), "last_error": s.last_error}
            for s in subs if s.key is not None and not presence_converged([s], keys)][:5]


def presence_converged(subs: list[Subscriber], keys: set[str]) -> bool:
    """Every tracker is joined and sees each tracked key once, with exactly one meta."""
    return all(s.joined.is_set() and s.presence.keys() == keys and all(len(v) == 1 for v in s.presence.values())
               for s in subs if s.key is not None)


async def test_kill_a_worker_then_restart_redis_under_load(
    tmp_path: Path, free_port: int, private_redis: PrivateRedis,  # noqa: F811
) -> None:
    need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    schema = f"chaos_{secrets.token_hex(4)}"
    await _create_schema(schema)
    secret = secrets.token_hex(32)
    env = {**os.environ, "ONAIR_DATA_DIR": str(tmp_path), "ONAIR_PORT": str(free_port),
           "ONAIR_DATABASE_URL": POSTGRES_URL, "ONAIR_DATABASE_SCHEMA": schema,
           "ONAIR_BROKER_URL": private_redis.url, "ONAIR_BROKER_KEY_PREFIX": f"{schema}:",
           "ONAIR_JWT_SECRET": secret, "ONAIR_LOG_LEVEL": os.environ.get("ONAIR_CHAOS_LOG_LEVEL", "warning"),
           "ONAIR_PRESENCE_TTL": str(PRESENCE_TTL),
           "ONAIR_PRESENCE_HEARTBEAT_INTERVAL": str(PRESENCE_HEARTBEAT),
           "ONAIR_BROKER_CONNECT_TIMEOUT": "0.5", "ONAIR_BROKER_RECONNECT_MIN": "0.05",
           "ONAIR_BROKER_RECONNECT_MAX": "0.5", "ONAIR_BROKER_HEALTH_INTERVAL": "1",
           "ONAIR_REALTIME_MAX_CONNECTIONS_PER_IP": "10000",
           "ONAIR_REALTIME_MAX_CONNECTIONS_PER_USER": "10000",
           "ONAIR_CHAT_RATE_PER_SECOND": "100", "ONAIR_CHAT_RATE_BURST": "100"}
    with (tmp_path / "stdout.log").open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "onair", "serve", "--workers", "2"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{free_port}"
    subs: list[Subscriber] = []
    tasks: list[asyncio.Task[None]] = []
    chat: Chat | None = None
    # closed only after every subscriber has stopped: a resync still connecting when the pool
    # closes would leave its new connection open
    http = httpx.AsyncClient(base_url=base, timeout=5, limits=httpx.Limits(max_connections=16))
    try:
        async with asyncio.timeout(120):
            await wait_until(lambda: len(children_of(proc.pid)) == 2, "two workers run", 30)
            async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
                async def ready() -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        return (await probe.get("/readyz")).status_code == 200
                    return False
                for _ in range(300):
                    if await ready():
                        break
                    await asyncio.sleep(0.1)
                seller = {"authorization": f"Bearer {mint_token(secret, 'sally', Role.SELLER, 3600)}"}
                sid = (await probe.post("/api/v1/streams", json={"title": "chaos"}, headers=seller)).json()["id"]
                assert (await probe.post(f"/api/v1/streams/{sid}/start", headers=seller)).status_code == 200

            ws_url = (f"ws://127.0.0.1:{free_port}/realtime/v1/websocket"
                      f"?apikey={mint_key(secret, 'anon', 20 * 365 * 86400)}&vsn=1.0.0")
            topic = f"realtime:stream:{sid}"
            keys = {f"viewer-{n}" for n in range(TRACKERS)}  # signed-in: presence is keyed by user
            for n in range(SUBSCRIBERS):
                tracker = n < TRACKERS
                token = mint_token(secret, f"viewer-{n}", Role.BUYER, 3600) if tracker else None
                subs.append(Subscriber(n, ws_url, topic, sid, http, token,
                                       f"tracker-{n}" if tracker else None))
            for batch in range(0, SUBSCRIBERS, 20):  # connect in small waves: both workers accept
                tasks += [asyncio.create_task(s.run()) for s in subs[batch:batch + 20]]
                await asyncio.sleep(0.05)
            t = await wait_until(lambda: all(s.joined.is_set() for s in subs), "every subscriber joined", 30,
                                 lambda: states(subs))
            await wait_until(lambda: presence_converged(subs, keys), "presence converged", 15,
                             lambda: presence_views(subs))
            print(f"chaos: {SUBSCRIBERS} joined in {t:.1f} s")

            chat = Chat(base, sid, secret)
            senders = [asyncio.create_task(chat.sender(k)) for k in range(SENDERS)]
            tasks += senders
            await asyncio.sleep(2)

            # (a) one worker dies without a word
            workers = children_of(proc.pid)
            victim = random.choice(sorted(workers))
            acked_before = len(chat.acked)
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.sleep(0.5)
            dropped = [s for s in subs if s.drops and s.drops[-1] >= killed]
            await wait_until(lambda: all(s.joined.is_set() and s.joins[-1] > killed for s in dropped),
                             "the killed worker's clients joined again", 20)
            rejoin = max(s.joins[-1] for s in dropped) - killed
            await wait_until(lambda: presence_converged(subs, keys), "presence converged after the kill",
                             PRESENCE_TTL + PRESENCE_HEARTBEAT + 5, lambda: presence_views(subs))
            presence_after_kill = time.monotonic() - killed  # polled: an upper bound
            assert presence_after_kill < PRESENCE_TTL + PRESENCE_HEARTBEAT + 2
            await wait_until(lambda: len(children_of(proc.pid)) == 2 and victim not in children_of(proc.pid),
                             "the killed worker is replaced", 30)
            assert 0 < len(dropped) < SUBSCRIBERS, f"{len(dropped)} of {SUBSCRIBERS} were on the killed worker"
            await asyncio.sleep(2)

            # (b) Redis dies and comes back
            workers = children_of(proc.pid)
            await wait_until(lambda: all(s.joined.is_set() for s in subs), "everyone joined", 20)
            connected = [s for s in subs if s.joined.is_set()]
            private_redis.stop()
            redis_down = time.monotonic()
            await asyncio.sleep(REDIS_DOWN_SECONDS)
            await private_redis.start()
            redis_up = time.monotonic()

            def told(s: Subscriber, status: str, text: str) -> bool:
                return any(at >= redis_down and st == status and text in m for at, st, m in s.system)

            await wait_until(lambda: all(told(s, "ok", RESTORED) or (s.drops and s.drops[-1] >= redis_down)
                                         for s in connected),
                             "every channel is told live delivery is restored", 20)
            # when the last channel heard "restored", counted from the moment Redis answered again
            restored = max(min(at for at, st, m in s.system if at >= redis_down and st == "ok")
                           for s in connected if told(s, "ok", RESTORED)) - redis_up
            await wait_until(lambda: all(s.joined.is_set() for s in subs), "everyone joined", 20)
            await wait_until(lambda: presence_converged(subs, keys),
                             "presence converged after the Redis restart", PRESENCE_TTL + PRESENCE_HEARTBEAT + 5,
                             lambda: presence_views(subs))
            presence_after_redis = time.monotonic() - redis_up  # polled: an upper bound
            assert proc.poll() is None
            assert children_of(proc.pid) == workers, "a worker died or restarted during the Redis outage"
            await asyncio.sleep(2)

            chat.running = False
            await asyncio.gather(*senders)
            acked = set(chat.acked.values())
            assert len(acked) == len(chat.acked), "two acknowledged messages share a seq"
            caught_up = await wait_until(lambda: all(acked <= s.seen for s in subs),
                                         "every subscriber has every acknowledged message", 30)
            stored = await all_seqs(http, sid)
            assert acked <= stored
            for s in subs:
                assert s.seen <= stored, f"subscriber {s.n} has seqs that are not stored"
                assert s.live_duplicates == 0, f"subscriber {s.n} received a seq twice on one socket"
            lost_told = sum(told(s, "error", LOST) for s in connected)
            assert lost_told >= len(connected) * 0.9, f"only {lost_told} of {len(connected)} told of the loss"
            summary = {
                "subscribers": SUBSCRIBERS, "chat_per_second": CHAT_PER_SECOND,
                "acknowledged": len(acked), "acknowledged_before_kill": acked_before,
                "send_retries": chat.retries,
                "send_s_p50_max": [round(sorted(chat.latencies)[len(chat.latencies) // 2], 3),
                                   round(max(chat.latencies), 3)],
                "kill": {"clients_dropped": len(dropped), "all_rejoined_s": round(rejoin, 2),
                         "presence_converged_s": round(presence_after_kill, 2)},
                "redis": {"down_s": REDIS_DOWN_SECONDS, "channels_told_lost": lost_told,
                          "all_told_restored_after_up_s": round(restored, 2),
                          "presence_converged_after_up_s": round(presence_after_redis, 2),
                          "joins_refused": sum(s.refused for s in subs)},
                "resynced_messages": sum(s.resynced for s in subs),
                "resyncs": sum(s.resyncs for s in subs),
                "caught_up_after_load_s": round(caught_up, 2),
            }
            print("chaos:", json.dumps(summary))
    finally:
        if chat is not None:
            chat.running = False
        for s in subs:
            s.stop()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        await http.aclose()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        await _create_schema(schema, drop=True)
    assert proc.returncode == 0, (tmp_path / "stdout.log").read_text()[-3000:]


async def all_seqs(http: httpx.AsyncClient, stream_id: str) -> set[int]:
    seqs: set[int] = set()
    after = 0
    while True:
        page = (await http.get(f"/api/v1/streams/{stream_id}/chat",
                               params={"after_seq": after, "limit": 1000})).json()
        seqs.update(int(m["seq"]) for m in page["messages"])
        if page["next_cursor"] is None:
            return seqs
        after = int(page["next_cursor"])

