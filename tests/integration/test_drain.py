"""SIGTERM drains `onair serve`: acknowledged chat is committed, realtime clients are told to
reconnect (close code 1012), and the process exits 0 within ONAIR_SHUTDOWN_TIMEOUT."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets

from onair.auth.jwt import mint_key, mint_token
from onair.domain.identity import Role
from tests.integration.test_logs_serve import free_port_number, json_lines, redis_server, serve_env
from tests.integration.test_serve import wait_ready

SERVICE_RESTART = 1012


async def open_socket(port: int, secret: str, topic: str) -> Any:
    url = (f"ws://127.0.0.1:{port}/realtime/v1/websocket"
           f"?apikey={mint_key(secret, 'anon', 20 * 365 * 86400)}&vsn=1.0.0")
    ws = await websockets.connect(url)
    await ws.send(json.dumps({"topic": topic, "event": "phx_join", "ref": "1",
                              "payload": {"config": {"broadcast": {"self": False}}}}))
    async with asyncio.timeout(15):
        while json.loads(await ws.recv())["event"] != "phx_reply":
            pass
    return ws


async def close_code(ws: Any, timeout: float) -> int | None:
    """Read until the server closes; the code it closed with."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def chat_burst(base: str, secret: str, sid: str, acked: list[str], stop: asyncio.Event,
                     failed: list[int], senders: int = 12) -> None:
    """Senders posting as fast as they can until the server goes away; acked gets every
    client_msg_id answered 201, failed every 5xx status."""

    async def sender(n: int) -> None:
        headers = {"authorization": f"Bearer {mint_token(secret, f'buyer{n}', Role.BUYER, 600)}"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            i = 0
            while not stop.is_set():
                i += 1
                msg_id = f"s{n}-{i}"
                try:
                    r = await http.post(f"/api/v1/streams/{sid}/chat", headers=headers,
                                        json={"body": f"burst {msg_id}", "client_msg_id": msg_id})
                except httpx.TransportError:
                    return  # refused or cut: never acknowledged
                if r.status_code == 201:
                    acked.append(msg_id)
                elif r.status_code >= 500:
                    failed.append(r.status_code)
                elif r.status_code != 429:
                    raise AssertionError(f"{r.status_code}: {r.text}")

    await asyncio.gather(*(sender(n) for n in range(senders)))


def committed_ids(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {row[0] for row in db.execute("SELECT client_msg_id FROM chat_messages")}


async def drained(tmp_path: Path, port: int, env_extra: dict[str, str],
                  shutdown_timeout: float) -> tuple[float, list[int], str]:
    """Start, load with sockets and a chat burst, SIGTERM; check what every client saw."""
    secret = secrets.token_hex(32)
    out_path = tmp_path / "stdout.log"
    env = serve_env(tmp_path / "data", port, ONAIR_JWT_SECRET=secret,
                    ONAIR_SHUTDOWN_TIMEOUT=str(shutdown_timeout),
                    ONAIR_CHAT_RATE_PER_MINUTE="100000", **env_extra)
    with out_path.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "onair", "serve"], env=env,
                                stdout=out, stderr=subprocess.PIPE)
    try:
        wait_ready(port)
        base = f"http://127.0.0.1:{port}"
        seller = {"authorization": f"Bearer {mint_token(secret, 'sally', Role.SELLER, 600)}"}
        sid = httpx.post(f"{base}/api/v1/streams", json={"title": "drain"}, headers=seller).json()["id"]
        assert httpx.post(f"{base}/api/v1/streams/{sid}/start", headers=seller).status_code == 200
        sockets = [await open_socket(port, secret, f"realtime:stream:{sid}") for _ in range(5)]
        acked: list[str] = []
        stop = asyncio.Event()
        failed: list[int] = []
        burst = asyncio.create_task(chat_burst(base, secret, sid, acked, stop, failed))
        while len(acked) < 30:  # the burst is under way
            await asyncio.sleep(0.05)
            assert not burst.done(), burst
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        codes = await asyncio.gather(*(close_code(ws, shutdown_timeout + 5) for ws in sockets))
        exit_code = await asyncio.to_thread(proc.wait, shutdown_timeout + 10)
        took = time.monotonic() - signalled
        stop.set()
        await asyncio.wait_for(burst, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert exit_code == 0, err.decode()[-3000:]
    assert codes == [SERVICE_RESTART] * len(sockets), codes
    missing = set(acked) - committed_ids(tmp_path / "data" / "onair.db")
    assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:10]}"
    return took, failed, out_path.read_text()


async def test_sigterm_drains_sqlite_in_memory_broker(tmp_path: Path, free_port: int) -> None:
    took, failed, out = await drained(tmp_path, free_port, {}, shutdown_timeout=6)
    assert took < 6 + 2, took
    assert not failed, failed  # nothing in flight was cut off: it all finished
    events = [r["event"] for r in json_lines(out) if r["logger"] == "onair.server"]
    assert events[-2:] == ["draining", "stopped"], events


async def test_sigterm_exits_in_time_even_with_a_hung_redis(tmp_path: Path, free_port: int) -> None:
    """A broker that stops answering (paused, not dead) must not keep the process from exiting:
    the stop is bounded by ONAIR_SHUTDOWN_TIMEOUT, and the chat acknowledged before is kept."""
    redis_port = free_port_number()
    with redis_server(redis_port) as redis:
        extra = {"ONAIR_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
                 "ONAIR_BROKER_KEY_PREFIX": f"drain-{uuid.uuid4().hex[:8]}:"}
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, lambda: os.kill(redis.pid, signal.SIGSTOP))
        try:
            # sends stuck on the paused Redis are cut at the deadline: a 5xx, never a 201
            took, _, out = await drained(tmp_path, free_port, extra, shutdown_timeout=2)
        finally:
            os.kill(redis.pid, signal.SIGCONT)
    # (before ONAIR_SHUTDOWN_TIMEOUT: a fixed 5 s for requests, then an unbounded stop)
    assert took < 2 + 2.5, took
    cut = [r for r in json_lines(out) if r["logger"] == "uvicorn.error"]
    assert all(r["level"] == "warning" and "exception" not in r for r in cut), cut


async def reconnecting_client(port: int, secret: str, topic: str, log: list[tuple[str, float]],
                              stop: asyncio.Event) -> None:
    """A client that does what realtime-js does: reconnect and rejoin after any close."""
    while not stop.is_set():
        try:
            ws = await open_socket(port, secret, topic)
        except (OSError, websockets.WebSocketException, TimeoutError):
            await asyncio.sleep(0.2)
            continue
        log.append(("joined", time.monotonic()))
        reader = asyncio.create_task(close_code(ws, 3600))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            reader.cancel()
            await ws.close()
            return
        stopper.cancel()
        log.append((f"closed {reader.result()}", time.monotonic()))


async def test_rolling_restart_of_two_workers_loses_no_acknowledged_chat(
    tmp_path: Path, free_port: int,
) -> None:
    """SIGHUP to `serve --workers 2`: one worker at a time is replaced (the new one accepting
    before the old one drains) under chat load; every 201 is in the database, every realtime
    client is closed with 1012 at most once per worker and is joined again within seconds."""
    from tests.integration.test_serve_workers import children_of, wait_for

    redis_port = free_port_number()
    secret = secrets.token_hex(32)
    out_path = tmp_path / "stdout.log"
    with redis_server(redis_port):
        env = serve_env(tmp_path / "data", free_port, ONAIR_JWT_SECRET=secret,
                        ONAIR_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
                        ONAIR_SHUTDOWN_TIMEOUT="5", ONAIR_CHAT_RATE_PER_MINUTE="100000")
        with out_path.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "onair", "serve", "--workers", "2"],
                                    env=env, stdout=out, stderr=subprocess.PIPE)
        try:
            wait_ready(free_port)
            wait_for(lambda: len(children_of(proc.pid)) == 2, "two workers run")
            first = set(children_of(proc.pid))
            base = f"http://127.0.0.1:{free_port}"
            seller = {"authorization": f"Bearer {mint_token(secret, 'sally', Role.SELLER, 600)}"}
            sid = httpx.post(f"{base}/api/v1/streams", json={"title": "roll"},
                             headers=seller).json()["id"]
            httpx.post(f"{base}/api/v1/streams/{sid}/start", headers=seller)
            stop = asyncio.Event()
            logs: list[list[tuple[str, float]]] = [[] for _ in range(6)]
            clients = [asyncio.create_task(reconnecting_client(
                free_port, secret, f"realtime:stream:{sid}", log, stop)) for log in logs]
            acked: list[str] = []
            senders_stop = asyncio.Event()

            async def sender(n: int) -> None:
                headers = {"authorization":
                           f"Bearer {mint_token(secret, f'buyer{n}', Role.BUYER, 600)}"}
                i = 0
                while not senders_stop.is_set():
                    i += 1
                    msg_id = f"r{n}-{i}"
                    try:  # a fresh connection per send: the kernel spreads them over workers
                        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                            r = await http.post(f"/api/v1/streams/{sid}/chat", headers=headers,
                                                json={"body": msg_id, "client_msg_id": msg_id})
                    except httpx.TransportError:
                        continue
                    if r.status_code == 201:
                        acked.append(msg_id)
                    await asyncio.sleep(0.02)

            senders = [asyncio.create_task(sender(n)) for n in range(6)]
            wait_joined = time.monotonic() + 30
            while not all(log for log in logs) or len(acked) < 20:
                assert time.monotonic() < wait_joined, "clients or senders did not start"
                await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGHUP)
            restart_end = time.monotonic() + 90
            while "rolling restart done" not in out_path.read_text():
                assert time.monotonic() < restart_end, out_path.read_text()[-3000:]
                await asyncio.sleep(0.2)
            await asyncio.sleep(3)  # clients of the last worker reconnect meanwhile
            senders_stop.set()
            await asyncio.gather(*senders)
            now = set(children_of(proc.pid))
            stop.set()
            await asyncio.gather(*clients)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert len(now) == 2 and not (now & first), (first, now)
    missing = set(acked) - committed_ids(tmp_path / "data" / "onair.db")
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages lost"
    for log in logs:
        closes = [(what, at) for what, at in log if what.startswith("closed")]
        assert 1 <= len(closes) <= 2, log  # its worker was restarted (once more if it landed
        assert all(what == f"closed {SERVICE_RESTART}" for what, _ in closes), log  # on a new one)
        for what, at in closes:
            rejoined = [t for w, t in log if w == "joined" and t > at]
            assert rejoined and rejoined[0] - at < 5, log
