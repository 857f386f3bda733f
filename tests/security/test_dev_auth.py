"""Issue 10 finding 4: dev sign-in (mint any role's token) is on by default only where nobody
else can reach it — SQLite, a loopback bind, the generated secret, a loopback client — and an
explicit ONAIR_DEV_AUTH=true is logged loudly at start."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import structlog

from onair.app import create_app
from onair.domain.clock import FakeClock
from onair.settings import Settings, is_loopback_host
from tests.apps import running_context

SECRET = "configured-secret-" + "x" * 40
LOOPBACK = ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"]
EXPOSED = ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "onair.example.com", ""]


@pytest.mark.parametrize("host", LOOPBACK + EXPOSED)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host) is (host in LOOPBACK)


@pytest.mark.parametrize("host,secret,postgres,explicit", list(itertools.product(
    ["127.0.0.1", "::1", "localhost", "0.0.0.0", "192.168.1.20"], [None, SECRET], [False, True],
    [None, True, False])))
def test_decision_table(tmp_path: Path, host: str, secret: str | None, postgres: bool,
                        explicit: bool | None) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, host=host, jwt_secret=secret,
                        dev_auth=explicit,
                        database_url="postgresql://x/y" if postgres else None)
    by_default = is_loopback_host(host) and secret is None and not postgres
    assert settings.dev_auth_enabled is (by_default if explicit is None else explicit)
    warning = settings.dev_auth_warning()
    if explicit is not True:
        assert warning is None
    else:
        assert warning is not None
        level, message = warning
        exposed = not is_loopback_host(host) or secret is not None
        assert level == ("error" if exposed else "warning")
        assert "admin token" in message
        assert ("ONAIR_JWT_SECRET" in message) is (secret is not None)


async def sign_in(settings: Settings, client_addr: tuple[str, int],
                  base_url: str = "http://127.0.0.1:8000", **headers: str) -> httpx.Response:
    async with running_context(settings, FakeClock()) as ctx:
        app = create_app(settings, ctx=ctx, run_reaper=False)
        transport = httpx.ASGITransport(app=app, client=client_addr)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            return await http.post("/api/v1/auth/dev-sign-in", json={"user": "mallory", "role": "admin"},
                                   headers=headers)


@pytest.mark.parametrize("secret,client,explicit,status", [
    (None, "127.0.0.1", None, 200),
    (None, "203.0.113.9", None, 404),  # the app served by something else on a public address
    (SECRET, "127.0.0.1", None, 404),  # would mint tokens every holder of the secret trusts
    (SECRET, "203.0.113.9", True, 200),  # explicit is explicit
    (None, "127.0.0.1", False, 404),
])
async def test_dev_sign_in_in_the_app(tmp_path: Path, secret: str | None, client: str,
                                      explicit: bool | None, status: int) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, jwt_secret=secret, dev_auth=explicit,
                        reaper_interval=3600)
    response = await sign_in(settings, (client, 5000))
    assert response.status_code == status, response.text
    if status == 404:
        assert response.json()["type"].endswith("dev-auth-disabled")


@pytest.mark.parametrize("base_url,headers,status", [
    ("http://localhost:8000", {}, 200),
    ("http://[::1]:8000", {}, 200),
    ("http://127.0.0.1:8000", {"x-forwarded-for": "198.51.100.7"}, 404),  # a proxy on this host
    ("http://127.0.0.1:8000", {"forwarded": "for=198.51.100.7"}, 404),
    ("http://127.0.0.1:8000", {"x-real-ip": "198.51.100.7"}, 404),
    ("http://shop.example.com", {}, 404),  # relayed under the public name, or DNS rebinding
])
async def test_default_dev_sign_in_needs_a_local_request(tmp_path: Path, base_url: str,
                                                         headers: dict[str, str], status: int) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, reaper_interval=3600)
    response = await sign_in(settings, ("127.0.0.1", 5000), base_url, **headers)
    assert response.status_code == status, response.text


async def test_explicit_dev_auth_is_logged_at_start(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, jwt_secret=SECRET, dev_auth=True,
                        host="0.0.0.0", reaper_interval=3600)
    with structlog.testing.capture_logs() as logs:
        async with running_context(settings, FakeClock()):
            pass
    loud = [e for e in logs if e["event"] == "dev_auth_enabled"]
    assert loud and loud[0]["log_level"] == "error"
    assert "0.0.0.0" in loud[0]["detail"] and "ONAIR_JWT_SECRET" in loud[0]["detail"]


# -- `onair serve` as deployed ---------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(tmp_path: Path, *args: str, **env: str) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    environ = {**os.environ, "ONAIR_DATA_DIR": str(tmp_path / "data"), "ONAIR_LOG_JSON": "true",
               **env}
    for key in ("ONAIR_DATABASE_URL", "ONAIR_BROKER_URL", "ONAIR_JWT_SECRET", "ONAIR_DEV_AUTH",
                "ONAIR_HOST"):
        if key not in env:
            environ.pop(key, None)
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "onair", "serve", "--port", str(port), *args],
                                env=environ, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        yield base, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def dev_sign_in(base: str) -> httpx.Response:
    return httpx.post(f"{base}/api/v1/auth/dev-sign-in", json={"user": "mallory", "role": "admin"},
                      timeout=10)


def test_serve_on_all_interfaces_has_no_dev_sign_in(tmp_path: Path) -> None:
    with serve(tmp_path, "--host", "0.0.0.0") as (base, log):
        response = dev_sign_in(base)
        assert response.status_code == 404
        assert response.json()["type"].endswith("dev-auth-disabled")
        assert httpx.get(f"{base}/api/v1/config").json()["dev_auth"] is False
        assert "metrics_public" in log.read_text()  # and /metrics is said to be open


def test_serve_with_a_configured_secret_has_no_dev_sign_in(tmp_path: Path) -> None:
    with serve(tmp_path, "--host", "127.0.0.1", ONAIR_JWT_SECRET=SECRET) as (base, _):
        response = dev_sign_in(base)
        assert response.status_code == 404
        assert response.json()["type"].endswith("dev-auth-disabled")


def test_serve_loopback_with_the_generated_secret_keeps_dev_sign_in(tmp_path: Path) -> None:
    with serve(tmp_path) as (base, log):  # `make run`
        assert dev_sign_in(base).status_code == 200
        assert "dev_auth_enabled" not in log.read_text()


def test_explicit_dev_auth_on_all_interfaces_works_and_is_logged(tmp_path: Path) -> None:
    with serve(tmp_path, "--host", "0.0.0.0", ONAIR_DEV_AUTH="true") as (base, log):
        response = dev_sign_in(base)
        assert response.status_code == 200
        text = log.read_text()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "dev_auth_enabled" and e.get("level") == "error" for e in events), text
    assert "WARNING" in text  # the banner says it too
