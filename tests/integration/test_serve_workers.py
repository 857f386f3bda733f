"""`onair serve --workers N`: one port, N supervised processes, graceful stop, restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REDIS_URL, need_redis
from tests.integration.test_serve import wait_ready


def children_of(pid: int) -> dict[int, str]:
    """Live child processes of pid → their command line (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def wait_for(condition: object, what: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def serve(data_dir: Path, port: int, *args: str, broker: bool = True) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ONAIR_DATA_DIR": str(data_dir), "ONAIR_PORT": str(port),
           "ONAIR_BROKER_KEY_PREFIX": f"workers-{uuid.uuid4().hex[:8]}:"}
    env.pop("ONAIR_DATABASE_URL", None)
    env.pop("ONAIR_BROKER_URL", None)
    if broker:
        env["ONAIR_BROKER_URL"] = REDIS_URL
    with (data_dir / "stdout.log").open("ab") as out:  # JSON logs: a file never fills up
        return subprocess.Popen([sys.executable, "-m", "onair", "serve", *args], env=env,
                                stdout=out, stderr=subprocess.PIPE)


async def join_chat_inserts(ws: Any, topic: str, stream_id: str, ref: str = "1") -> dict[str, Any]:
    """Join ``topic`` (vsn 1.0.0) with a binding on the stream's chat inserts; the phx_reply."""
    await ws.send(json.dumps({"topic": topic, "event": "phx_join", "ref": ref,
                              "payload": {"config": {"postgres_changes": [{
                                  "event": "INSERT", "schema": "public", "table": "chat_messages",
                                  "filter": f"stream_id=eq.{stream_id}"}]}}}))
    while (reply := json.loads(await ws.recv()))["event"] != "phx_reply":
        pass
    return dict(reply)


def test_two_workers_share_the_port_restart_and_stop(tmp_path: Path, free_port: int) -> None:
    need_redis()
    proc = serve(tmp_path, free_port, "--workers", "2")
    try:
        wait_ready(free_port)
        wait_for(lambda: len(children_of(proc.pid)) == 2, "two workers run")
        workers = children_of(proc.pid)
        assert all("serve-worker" in cmd for cmd in workers.values())
        # Every new connection is answered, by whichever worker the kernel picks.
        base = f"http://127.0.0.1:{free_port}"
        for _ in range(30):
            with httpx.Client() as client:  # a fresh connection each time
                assert client.get(f"{base}/readyz").status_code == 200
        # A stream created through one connection is there for every other.
        signed = httpx.post(f"{base}/api/v1/auth/dev-sign-in",
                            json={"user": "sam", "role": "seller"}).json()
        headers = {"authorization": f"Bearer {signed['access_token']}"}
        stream = httpx.post(f"{base}/api/v1/streams", json={"title": "two"}, headers=headers)
        assert stream.status_code == 201
        for _ in range(10):
            with httpx.Client() as client:
                got = client.get(f"{base}/api/v1/streams/{stream.json()['id']}")
                assert got.status_code == 200
        # A worker that dies is replaced; the port keeps answering meanwhile.
        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)
        def replaced_by_a_new_worker() -> bool:
            now = children_of(proc.pid)
            return (len(now) == 2 and victim not in now and bool(set(now) - set(workers))
                    and all("serve-worker" in cmd for cmd in now.values()))

        wait_for(replaced_by_a_new_worker, "the killed worker is replaced by a new one")
        assert httpx.get(f"{base}/readyz").status_code == 200
        replaced = children_of(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    logged = (tmp_path / "stdout.log").read_text()
    assert "exited with -9; starting another" in logged
    assert not any(Path(f"/proc/{pid}").exists() and "serve-worker" in
                   Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                   for pid in replaced)


def test_several_workers_need_a_shared_broker(tmp_path: Path, free_port: int) -> None:
    proc = serve(tmp_path, free_port, "--workers", "3", broker=False)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "needs ONAIR_BROKER_URL" in err.decode()


def test_a_taken_port_is_a_clear_error(tmp_path: Path, free_port: int) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        proc = serve(tmp_path, free_port, "--workers", "2")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{free_port}" in err.decode()


async def test_chat_from_both_workers_reaches_a_subscriber_in_seq_order(
    tmp_path: Path, free_port: int,
) -> None:
    """Property 6 end to end across processes: concurrent sends land on both workers, whose
    commits interleave; a realtime subscriber on either worker gets seqs 1..n, each once, in
    order. (Here the two workers' publications rarely overtake each other on the wire, so the
    reordering itself is exercised by tests/property/test_chat_order_properties.py and
    tests/realtime/test_chat_order_service.py.)"""
    import asyncio
    import json
    import secrets

    import websockets

    from onair.auth.jwt import mint_key, mint_token
    from onair.domain.identity import Role

    need_redis()
    secret = secrets.token_hex(32)
    os.environ["ONAIR_JWT_SECRET"] = secret  # read by serve() through os.environ
    try:
        proc = serve(tmp_path, free_port, "--workers", "2")
    finally:
        del os.environ["ONAIR_JWT_SECRET"]
    base = f"http://127.0.0.1:{free_port}"
    messages = 300
    try:
        wait_ready(free_port)
        wait_for(lambda: len(children_of(proc.pid)) == 2, "two workers run")

        def bearer(user: str, role: Role) -> dict[str, str]:
            return {"authorization": f"Bearer {mint_token(secret, user, role, 600)}"}

        seller = bearer("sally", Role.SELLER)
        async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=32)) as http:
            sid = (await http.post("/api/v1/streams", json={"title": "w"}, headers=seller)).json()["id"]
            assert (await http.post(f"/api/v1/streams/{sid}/start", headers=seller)).status_code == 200
            topic = f"realtime:stream:{sid}"
            ws_url = (f"ws://127.0.0.1:{free_port}/realtime/v1/websocket"
                      f"?apikey={mint_key(secret, 'anon', 20 * 365 * 86400)}&vsn=1.0.0")
            async with websockets.connect(ws_url) as ws:
                reply = await join_chat_inserts(ws, topic, sid)
                assert reply["payload"]["status"] == "ok"

                async def change_seq(timeout: float) -> int:
                    async with asyncio.timeout(timeout):
                        while (got := json.loads(await ws.recv()))["event"] != "postgres_changes":
                            pass
                    return int(got["payload"]["data"]["record"]["seq"])

                # The worker subscribes to the stream's broker topic after the join; until a
                # message comes through, later ones could be missed, so send until one does.
                primed = 0
                async with asyncio.timeout(15):
                    while True:
                        primed += 1
                        r = await http.post(f"/api/v1/streams/{sid}/chat", headers=seller,
                                            json={"body": "prime", "client_msg_id": f"p{primed}"})
                        assert r.status_code == 201, r.text
                        try:
                            await change_seq(0.5)
                            break
                        except TimeoutError:
                            continue

                async def send(i: int) -> None:
                    headers = bearer(f"buyer{i % 40}", Role.BUYER)
                    async with httpx.AsyncClient(base_url=base) as own:  # own connection each
                        r = await own.post(f"/api/v1/streams/{sid}/chat", headers=headers,
                                           json={"body": f"m{i}", "client_msg_id": f"c{i}"})
                        assert r.status_code == 201, r.text

                await asyncio.gather(*(send(i) for i in range(messages)))
                seqs: list[int] = []
                while len(seqs) < messages:
                    seq = await change_seq(20)
                    if seq > primed:  # a late echo of a priming message is not counted
                        seqs.append(seq)
        assert seqs == list(range(primed + 1, primed + messages + 1))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_bad_settings_are_one_line_errors(tmp_path: Path, free_port: int) -> None:
    env = {**os.environ, "ONAIR_DATA_DIR": str(tmp_path), "ONAIR_WORKERS": "0",
           "ONAIR_PORT": "eighty"}
    done = subprocess.run([sys.executable, "-m", "onair", "serve"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "onair: ONAIR_PORT: Input should be a valid integer, unable to parse string as an integer",
        "onair: ONAIR_WORKERS: Input should be greater than or equal to 1",
    ]
