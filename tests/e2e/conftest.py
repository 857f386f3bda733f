"""Fixtures for end-to-end tests in real Chromium (Debian's `chromium`, driven by Playwright).

`onair_server` runs `python -m onair serve` from this checkout as a subprocess on a free port with
a fresh data dir, and can restart it on the same port and data (the "server restarted
mid-stream" test). `browser` launches chromium with a fake camera. Screenshots go to
`test-output/`. Without chromium these tests skip, unless ONAIR_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OnairServer:
    """One `onair serve` process; `restart()` keeps port and data."""

    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.extra_env = env or {}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "ONAIR_DATA_DIR": str(self.data_dir),
               "ONAIR_HOST": "127.0.0.1", "ONAIR_PORT": str(self.port), "ONAIR_DEV_AUTH": "true",
               "ONAIR_LOG_LEVEL": "info", "ONAIR_WEB_RECONNECT_CAP": "2",
               "ONAIR_WEB_RECONNECT_BASE": "0.25", "ONAIR_WEB_RECONNECT_ATTEMPTS": "100",
               # a loaded CI machine may take long to restart the server: the reaper must not
               # pause the stream for a missing host heartbeat meanwhile
               "ONAIR_HEARTBEAT_INTERVAL": "3", "ONAIR_HOST_GRACE": "300", **self.extra_env}
        for key in ("ONAIR_DATABASE_URL", "ONAIR_AGORA_APP_ID", "ONAIR_AGORA_APP_CERTIFICATE"):
            if key not in self.extra_env:
                env.pop(key, None)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "onair", "serve"],
                                         cwd=self.data_dir.parent, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"onair serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=1)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as err:
                last = err
            time.sleep(0.1)
        raise RuntimeError(f"onair serve not ready after {timeout}s (last: {last!r}); log tail: "
                           f"{self.log_path.read_text()[-1500:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_seconds: float = 1.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def has_path(self, method: str, path: str) -> bool:
        """Whether this build routes `path` (an OpenAPI path) at all: parts land separately."""
        spec = httpx.get(f"{self.url}/openapi.json", timeout=5).json()
        return method.lower() in spec.get("paths", {}).get(path, {})

    def anon_key(self) -> str:
        return str(httpx.get(f"{self.url}/api/v1/config", timeout=5).json()["anon_key"])

    def has_realtime(self) -> bool:
        """Whether this build serves the realtime endpoint (a heartbeat gets its reply)."""
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        url = f"ws://127.0.0.1:{self.port}/realtime/v1/websocket?apikey={self.anon_key()}&vsn=2.0.0"
        try:
            with connect(url, open_timeout=3) as ws:
                ws.send('[null,"1","phoenix","heartbeat",{}]')
                return '"phx_reply"' in str(ws.recv(timeout=3))
        except (OSError, TimeoutError, WebSocketException):
            return False


@pytest.fixture(scope="module")
def onair_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    """One server per test module (it takes seconds to start); tests use their own streams, and
    a test that restarts it leaves it running."""
    tmp = tmp_path_factory.mktemp("onair")
    data = tmp / "data"
    data.mkdir()
    server = OnairServer(data, tmp / "onair.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        OUTPUT.mkdir(exist_ok=True)  # keep the server's log next to the screenshots
        shutil.copyfile(server.log_path, OUTPUT / f"onair-{Path(str(tmp)).name}.log")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    need(path is not None, "Debian's chromium is not installed (apt-get install -y chromium)")
    return str(path)


@pytest.fixture
def browser(chromium_path: str) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def shots() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
