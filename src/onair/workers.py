"""`onair serve --workers N`: N server processes answering on one listening socket.

The parent migrates the database, creates the JWT secret if needed, binds and listens once, then
starts N children (`onair serve-worker --fd …`) that inherit the socket; each runs the whole app
(its own event loop, database pool and realtime hub) and the kernel hands every new connection
to one of them. What the workers must share already goes through shared services: stream state
and chat through the database; events, presence and rate limits through the Redis broker, which
is why more than one worker needs ``ONAIR_BROKER_URL``.

The parent only supervises: a worker that exits on its own is started again (at most once per
``RESTART_DELAY`` each, so a crash loop does not spin), and SIGTERM or SIGINT stops every worker
gracefully and exits 0. It also gives the workers one fresh directory for their metrics, so any
worker's ``/metrics`` answers for all of them (``onair/metrics/multiprocess.py``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping

from onair.metrics import multiprocess

RESTART_DELAY = 1.0
POLL_INTERVAL = 0.2


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, sock: socket.socket, count: int, env: Mapping[str, str],
                 stop_timeout: float) -> None:
        self._sock = sock
        self._count = count
        self._env = dict(env)
        self._stop_timeout = stop_timeout
        self._stopping = False
        self.workers: list[subprocess.Popen[bytes]] = []
        self._started_at: list[float] = []

    def _spawn(self) -> subprocess.Popen[bytes]:
        fd = self._sock.fileno()
        return subprocess.Popen(
            [sys.executable, "-m", "onair", "serve-worker", "--fd", str(fd)],
            env=self._env, pass_fds=(fd,),
        )

    def _stop(self, *_: object) -> None:
        self._stopping = True

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        metrics_dir = self._env[multiprocess.ENV] = multiprocess.fresh_directory()
        try:
            for _ in range(self._count):
                self.workers.append(self._spawn())
                self._started_at.append(time.monotonic())
            while not self._stopping:
                time.sleep(POLL_INTERVAL)
                self._restart_exited()
            return self._shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            multiprocess.remove(metrics_dir)

    def _restart_exited(self) -> None:
        for index, worker in enumerate(self.workers):
            if self._stopping or worker.poll() is None:
                continue
            if time.monotonic() - self._started_at[index] < RESTART_DELAY:
                continue  # it died right after starting: wait before the next attempt
            print(f"onair worker {worker.pid} exited with {worker.returncode}; starting another",
                  file=sys.stderr, flush=True)
            multiprocess.worker_exited(self._env[multiprocess.ENV], worker.pid)
            self.workers[index] = self._spawn()
            self._started_at[index] = time.monotonic()

    def _shutdown(self) -> int:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout
        for worker in self.workers:
            try:
                worker.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self._sock.close()
        return 0


def worker_env(overrides: Mapping[str, object]) -> dict[str, str]:
    """The environment a worker reads its settings from: ours plus the command-line options."""
    env = dict(os.environ)
    env.update({f"ONAIR_{name.upper()}": str(value) for name, value in overrides.items()
                if value is not None})
    return env
