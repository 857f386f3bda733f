"""A real ``onair serve`` subprocess for the compatibility tests (official clients as drivers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from onair.auth.jwt import mint_token
from onair.auth.keys import load_or_create_secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OnairServer:
    url: str
    anon_key: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    secret: str | None = None

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/realtime/v1"

    def token(self, user: str, role: str = "buyer", ttl: float = 3600, now: float | None = None) -> str:
        return mint_token(self.secret or load_or_create_secret(self.data_dir), user, role, ttl, now=now)

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def create_live_stream(self, seller_token: str) -> str:
        stream = self.api("POST", "/api/v1/streams", seller_token, json={"title": "compat"}).json()
        assert self.api("POST", f"/api/v1/streams/{stream['id']}/start", seller_token).status_code == 200
        return str(stream["id"])


@contextmanager
def run_server(data_dir: Path, **env: str) -> Iterator[OnairServer]:
    port = free_port()
    environ = {**os.environ, "ONAIR_DATA_DIR": str(data_dir), "ONAIR_LOG_LEVEL": "warning",
               "ONAIR_REALTIME_SWEEP_INTERVAL": "0.2", **env}
    src = str(Path(__file__).resolve().parents[2] / "src")
    environ["PYTHONPATH"] = src + os.pathsep + environ.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "onair", "serve", "--port", str(port)], env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    anon = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not anon:
        line = proc.stderr.readline().decode()
        if not line and proc.poll() is not None:
            raise RuntimeError("onair serve exited")
        if "anon key" in line:
            anon = line.split()[-1]
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield OnairServer(url, anon, data_dir, proc, env.get("ONAIR_JWT_SECRET"))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()
