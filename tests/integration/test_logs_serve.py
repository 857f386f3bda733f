"""The logs of a real `onair serve`: every stdout line is JSON with time and level, the broker's
own messages included, and a Redis outage reads as warnings and a recovery, not tracebacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_serve import wait_ready


def free_port_number() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A Redis of our own (the machine's is never stopped), without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > end:
                raise AssertionError("redis-server did not start")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def serve_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {**os.environ, "ONAIR_DATA_DIR": str(data_dir), "ONAIR_PORT": str(port),
           "ONAIR_LOG_JSON": "true", "ONAIR_LOG_LEVEL": "info", **extra}
    env.pop("ONAIR_DATABASE_URL", None)
    if "ONAIR_BROKER_URL" not in extra:
        env.pop("ONAIR_BROKER_URL", None)
    return env


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed; a line that is not a JSON object with time and level fails."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(record, dict), line
        for key in ("timestamp", "level", "logger", "event"):
            assert key in record, f"{key} missing in {line!r}"
        records.append(record)
    return records


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def join(port: int, secret: str, topic: str, presence: bool = False) -> Any:
    """A realtime socket joined to ``topic`` (its join reply already read)."""
    import websockets

    from onair.auth.jwt import mint_key

    url = (f"ws://127.0.0.1:{port}/realtime/v1/websocket"
           f"?apikey={mint_key(secret, 'anon', 20 * 365 * 86400)}&vsn=1.0.0")
    ws = await websockets.connect(url)
    config: dict[str, Any] = {"broadcast": {"self": False}}
    if presence:
        config["presence"] = {"key": "viewer"}
    await ws.send(json.dumps({"topic": topic, "event": "phx_join", "ref": "1",
                              "payload": {"config": config}}))
    async with asyncio.timeout(15):
        while json.loads(await ws.recv())["event"] != "phx_reply":
            pass
    return ws


async def test_a_redis_outage_logs_warnings_and_a_recovery_as_json(tmp_path: Path,
                                                                   free_port: int) -> None:
    redis_port = free_port_number()
    out_path = tmp_path / "stdout.log"
    secret = secrets.token_hex(32)
    with redis_server(redis_port) as redis, out_path.open("wb") as out:
        env = serve_env(tmp_path / "data", free_port, ONAIR_JWT_SECRET=secret,
                        ONAIR_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
                        ONAIR_BROKER_KEY_PREFIX=f"logs-{uuid.uuid4().hex[:8]}:")
        proc = subprocess.Popen([sys.executable, "-m", "onair", "serve"], env=env,
                                stdout=out, stderr=subprocess.PIPE)
        try:
            wait_ready(free_port)
            base = f"http://127.0.0.1:{free_port}/api/v1"
            from onair.auth.jwt import mint_token
            from onair.domain.identity import Role

            headers = {"authorization": f"Bearer {mint_token(secret, 'olga', Role.SELLER, 600)}"}
            sid = httpx.post(f"{base}/streams", json={"title": "outage"}, headers=headers).json()["id"]
            httpx.post(f"{base}/streams/{sid}/start", headers=headers)
            assert httpx.post(f"{base}/streams/{sid}/chat", headers=headers,
                              json={"body": "before", "client_msg_id": "a"}).status_code == 201
            sockets = [await join(free_port, secret, f"realtime:stream:{sid}", presence=True)]
            redis.kill()
            redis.wait()
            await asyncio.sleep(1.5)
            # joins while the broker is down: subscribing fails, handled
            sockets.append(await join(free_port, secret, "realtime:lobby", presence=True))
            during = [httpx.post(f"{base}/streams/{sid}/chat", headers=headers, timeout=15,
                                 json={"body": f"during {i}", "client_msg_id": f"d{i}"}).status_code
                      for i in range(3)]
            assert all(code in (201, 503) for code in during), during
            await asyncio.sleep(1.0)
            with redis_server(redis_port):
                end = time.monotonic() + 30
                while "reconnected after" not in out_path.read_text():
                    assert time.monotonic() < end, "no recovery logged:\n" + out_path.read_text()
                    await asyncio.sleep(0.2)
                assert httpx.post(f"{base}/streams/{sid}/chat", headers=headers,
                                  json={"body": "after", "client_msg_id": "z"}).status_code == 201
                for ws in sockets:
                    await ws.close()
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    records = json_lines(out_path.read_text())
    text = out_path.read_text()
    broker = [r for r in records if r["logger"] == "onair.broker.redis"]
    assert any(r["level"] == "info" and "connected" in r["event"] for r in broker), text
    assert any(r["level"] == "warning" for r in broker), text
    recovery = [r for r in broker if "reconnected after" in r["event"]]
    assert recovery and recovery[0]["level"] == "info", text
    # A handled outage is warnings, not errors with tracebacks.
    assert not [r for r in records if r["level"] in ("error", "critical")], text
    assert "Traceback" not in text and "exception" not in text, text


def test_the_workers_supervisor_is_small_and_logs_json(tmp_path: Path, free_port: int) -> None:
    redis_port = free_port_number()
    out_path = tmp_path / "stdout.log"
    with redis_server(redis_port), out_path.open("wb") as out:
        env = serve_env(tmp_path / "data", free_port,
                        ONAIR_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0")
        proc = subprocess.Popen([sys.executable, "-m", "onair", "serve", "--workers", "2"],
                                env=env, stdout=out, stderr=subprocess.PIPE)
        try:
            wait_ready(free_port)

            def connected_workers() -> int:  # both started (a worker stopped mid-start is quiet)
                records = json_lines(out_path.read_text())
                return len({r["pid"] for r in records if r["logger"] == "onair.broker.redis"})

            end = time.monotonic() + 60
            while connected_workers() < 2:
                assert time.monotonic() < end, out_path.read_text()
                time.sleep(0.2)
            supervisor_kib = rss_kib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    # It used to build the whole app before forking (~104 MiB); it needs settings and logging.
    assert supervisor_kib < 60 * 1024, f"supervisor RSS {supervisor_kib} KiB"
    records = json_lines(out_path.read_text())
    loggers = {r["logger"] for r in records}
    assert {"onair.workers", "onair.broker.redis", "onair.server"} <= loggers, loggers
    assert len({r["pid"] for r in records}) >= 3  # the supervisor and both workers
