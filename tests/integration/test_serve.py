"""`onair serve` as users run it: a subprocess on a free port with a fresh data dir."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ONAIR_DATA_DIR": str(data_dir), "ONAIR_PORT": str(port),
           "ONAIR_LOG_JSON": "true"}
    env.pop("ONAIR_DATABASE_URL", None)
    env.pop("ONAIR_BROKER_URL", None)
    return subprocess.Popen([sys.executable, "-m", "onair", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_ready(port: int, deadline: float = 30) -> httpx.Response:
    end = time.monotonic() + deadline
    while True:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > end:
            raise AssertionError("onair serve did not become ready")
        time.sleep(0.2)


def test_serve_fresh_data_dir_then_sigterm(tmp_path: Path, free_port: int) -> None:
    data_dir = tmp_path / "fresh"
    proc = start(data_dir, free_port)
    try:
        ready = wait_ready(free_port)
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
        secret = data_dir / "jwt-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert (data_dir / "onair.db").exists()
        base = f"http://127.0.0.1:{free_port}/api/v1"
        signed = httpx.post(f"{base}/auth/dev-sign-in", json={"user": "alice", "role": "seller"}).json()
        headers = {"authorization": f"Bearer {signed['access_token']}"}
        stream = httpx.post(f"{base}/streams", json={"title": "smoke"}, headers=headers).json()
        assert httpx.post(f"{base}/streams/{stream['id']}/start", headers=headers).json()["status"] == "live"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
    printed = err.decode()
    assert f"http://127.0.0.1:{free_port}/" in printed and "anon key" in printed

    # The data survives a restart; the secret and the anon key stay the same.
    proc = start(data_dir, free_port)
    try:
        wait_ready(free_port)
        got = httpx.get(f"http://127.0.0.1:{free_port}/api/v1/streams/{stream['id']}").json()
        assert got["status"] == "live"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err2 = proc.communicate(timeout=20)
    assert proc.returncode == 0
    anon = [line for line in printed.splitlines() if "anon key" in line]
    assert anon and anon[0] in err2.decode()


def test_cli_keys_dev_token_migrate_settings(tmp_path: Path) -> None:
    env = {**os.environ, "ONAIR_DATA_DIR": str(tmp_path)}
    env.pop("ONAIR_DATABASE_URL", None)

    def onair(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "onair", *args], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "up to date" in onair("migrate")
    keys = onair("keys")
    assert "anon_key=" in keys and "service_key=" in keys
    token = onair("dev-token", "--user", "alice", "--role", "seller").strip()
    assert token.count(".") == 2
    table = onair("settings")
    assert "`ONAIR_HOST_GRACE`" in table and "`ONAIR_DATABASE_URL`" in table
