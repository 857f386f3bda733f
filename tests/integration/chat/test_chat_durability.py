"""Durability: SIGKILL `onair serve` in the middle of a chat load, restart it, and check that
every message that got a 201/200 is in history exactly once, and that retrying the unanswered
ones (same client_msg_id) never duplicates anything. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from onair.auth.jwt import mint_token
from onair.domain.identity import Role
from tests.integration.chat.conftest import JWT_SECRET

SRC = Path(__file__).resolve().parents[3] / "src"
SENDERS = 24
ACKS_BEFORE_KILL = 250
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "ONAIR_DATA_DIR": str(data_dir),
            "ONAIR_DATABASE_URL": database_url,
            "ONAIR_JWT_SECRET": JWT_SECRET,
            "ONAIR_PORT": str(self.port),
            "ONAIR_LOG_LEVEL": "warning",
            "ONAIR_CHAT_RATE_BURST": "100000",
            "ONAIR_CHAT_RATE_PER_SECOND": "100000",
        }
        self.log = data_dir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - spawning returns at once
                [sys.executable, "-m", "onair", "serve"], env=self.env,
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=self.base) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"onair serve exited: {self.log.read_text()[-2000:]}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("onair serve did not become ready")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def bearer(user_id: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, user_id, role, 3600)}"}


async def load_until_killed(server: Server, stream_id: str) -> tuple[dict[Any, Any], set[Any]]:
    """Concurrent senders; SIGKILL after enough acknowledgements. Returns (acked, unanswered)."""
    acked: dict[tuple[str, str], tuple[str, int]] = {}
    unanswered: set[tuple[str, str]] = set()
    killed = asyncio.Event()

    async def sender(index: int, client: httpx.AsyncClient) -> None:
        user = f"durable-{index}"
        headers = bearer(user, Role.BUYER)
        n = 0
        while not killed.is_set():
            key = (user, f"{user}-{n}")
            n += 1
            try:
                response = await client.post(
                    f"/api/v1/streams/{stream_id}/chat",
                    json={"body": f"body of {key[1]}", "client_msg_id": key[1]}, headers=headers)
            except httpx.TransportError:
                unanswered.add(key)
                return
            if response.status_code in (200, 201):
                acked[key] = (response.json()["id"], response.json()["seq"])
            else:
                unanswered.add(key)  # e.g. a 503 while shutting down: also retried later

    async def killer() -> None:
        while len(acked) < ACKS_BEFORE_KILL:
            await asyncio.sleep(0.005)
        server.kill()
        killed.set()

    limits = httpx.Limits(max_connections=SENDERS)
    async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=10) as client:
        await asyncio.wait_for(
            asyncio.gather(killer(), *(sender(i, client) for i in range(SENDERS))), 60
        )
    return acked, unanswered


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'onair.db'}"
    url: str = request.getfixturevalue("chat_pg_url")
    return url


async def test_every_acknowledged_message_survives_sigkill_exactly_once(
    tmp_path: Path, server_db_url: str
) -> None:
    server = Server(tmp_path, server_db_url)
    try:
        await server.start()
        seller = bearer("durable-seller", Role.SELLER)
        async with httpx.AsyncClient(base_url=server.base) as client:
            created = await client.post("/api/v1/streams", json={"title": "durable"},
                                        headers=seller)
            assert created.status_code == 201, created.text
            stream_id = created.json()["id"]
            assert (await client.post(f"/api/v1/streams/{stream_id}/start",
                                      headers=seller)).status_code == 200

        acked, unanswered = await load_until_killed(server, stream_id)
        assert len(acked) >= ACKS_BEFORE_KILL

        await server.start()  # same data dir / database, fresh process
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as client:
            for user, client_msg_id in sorted(unanswered):
                retry = await client.post(
                    f"/api/v1/streams/{stream_id}/chat",
                    json={"body": f"body of {client_msg_id}", "client_msg_id": client_msg_id},
                    headers=bearer(user, Role.BUYER))
                assert retry.status_code in (200, 201), retry.text
                acked[(user, client_msg_id)] = (retry.json()["id"], retry.json()["seq"])
            # A retry of an acknowledged message is answered with the original, never a copy.
            some = sorted(acked)[:20]
            for user, client_msg_id in some:
                again = await client.post(
                    f"/api/v1/streams/{stream_id}/chat",
                    json={"body": f"body of {client_msg_id}", "client_msg_id": client_msg_id},
                    headers=bearer(user, Role.BUYER))
                assert again.status_code == 200
                assert (again.json()["id"], again.json()["seq"]) == acked[(user, client_msg_id)]

            stored: list[dict[str, Any]] = []
            after: int | None = 0
            while after is not None:
                page = (await client.get(f"/api/v1/streams/{stream_id}/chat",
                                         params={"after_seq": after, "limit": 1000})).json()
                stored += page["messages"]
                after = page["next_cursor"]
    finally:
        server.stop()

    keys = [(m["sender_id"], m["client_msg_id"]) for m in stored]
    assert len(keys) == len(set(keys)), "a message was stored twice"
    assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
    by_key = {(m["sender_id"], m["client_msg_id"]): (m["id"], m["seq"]) for m in stored}
    assert set(by_key) == set(acked)
    for key, answer in acked.items():
        assert by_key[key] == answer
