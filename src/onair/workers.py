"""`onair serve --workers N`: N server processes answering on one listening socket.

The parent migrates the database, creates the JWT secret if needed, binds and listens once, then
starts N children (`onair serve-worker --fd …`) that inherit the socket; each runs the whole app
(its own event loop, database pool and realtime hub) and the kernel hands every new connection
to one of them. What the workers must share already goes through shared services: stream state
and chat through the database; events, presence and rate limits through the Redis broker, which
is why more than one worker needs ``ONAIR_BROKER_URL``.

The parent only supervises, and stays small for it (it never imports the app): a worker that
exits on its own is started again (at most once per ``RESTART_DELAY`` each, so a crash loop does
not spin); SIGTERM or SIGINT drains every worker (each gets ``ONAIR_SHUTDOWN_TIMEOUT``, then is
killed) and exits 0; SIGHUP is a rolling restart: one worker at a time is drained and replaced,
and the next only goes once the new one accepts connections, so the port never stops answering.
It also gives the workers one fresh directory for their metrics, so any worker's ``/metrics``
answers for all of them (``onair/metrics/multiprocess.py``).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

from onair.metrics import multiprocess

RESTART_DELAY = 1.0
POLL_INTERVAL = 0.2
READY_FD_ENV = "ONAIR_READY_FD"  # onair.server_process writes a byte to it once accepting

log = logging.getLogger("onair.workers")


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class Worker:
    """One child process and the read end of the pipe it reports readiness on."""

    def __init__(self, sock: socket.socket, env: Mapping[str, str]) -> None:
        fd = sock.fileno()
        self._ready_r, ready_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "onair", "serve-worker", "--fd", str(fd)],
                env={**env, READY_FD_ENV: str(ready_w)}, pass_fds=(fd, ready_w),
            )
        finally:
            os.close(ready_w)  # the child holds its copy: EOF here means it is gone
        self.started_at = time.monotonic()
        self.ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def wait_ready(self, timeout: float, give_up: Callable[[], bool] = lambda: False) -> bool:
        """True once the worker accepts connections; False if it died, took too long or
        ``give_up()`` said so (the supervisor is stopping)."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            left = deadline - time.monotonic()
            if left <= 0 or give_up():
                return False
            readable, _, _ = select.select([self._ready_r], [], [], min(left, POLL_INTERVAL))
            if readable:
                self.ready = os.read(self._ready_r, 1) == b"1"
                if not self.ready:
                    return False  # EOF: it exited before it was ready
        return True

    def stop(self, timeout: float) -> int:
        """SIGTERM (the worker drains), then SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("worker %d did not stop within %.0f s; killing it", self.pid, timeout)
            self.process.kill()
            return self.process.wait()
        finally:
            self.close()

    def close(self) -> None:
        if self._ready_r >= 0:
            os.close(self._ready_r)
            self._ready_r = -1


class Supervisor:
    def __init__(self, sock: socket.socket, count: int, env: Mapping[str, str],
                 stop_timeout: float, ready_timeout: float = 60.0) -> None:
        self._sock = sock
        self._count = count
        self._env = dict(env)
        self._stop_timeout = stop_timeout
        self._ready_timeout = ready_timeout
        self._stopping = False
        self._restart_requested = False
        self.workers: list[Worker] = []

    def _stop(self, *_: object) -> None:
        self._stopping = True

    def _rolling_restart(self, *_: object) -> None:
        self._restart_requested = True

    def run(self) -> int:
        handlers = {signal.SIGTERM: self._stop, signal.SIGINT: self._stop,
                    signal.SIGHUP: self._rolling_restart}
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        metrics_dir = self._env[multiprocess.ENV] = multiprocess.fresh_directory()
        try:
            self.workers = [Worker(self._sock, self._env) for _ in range(self._count)]
            log.info("supervising %d workers: %s", self._count,
                     " ".join(str(worker.pid) for worker in self.workers))
            while not self._stopping:
                time.sleep(POLL_INTERVAL)
                if self._restart_requested:
                    self._restart_requested = False
                    self._restart_one_by_one()
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
            if time.monotonic() - worker.started_at < RESTART_DELAY:
                continue  # it died right after starting: wait before the next attempt
            log.warning("worker %d exited with %s; starting another", worker.pid,
                        worker.process.returncode)
            worker.close()
            multiprocess.worker_exited(self._env[multiprocess.ENV], worker.pid)
            self.workers[index] = Worker(self._sock, self._env)

    def _restart_one_by_one(self) -> None:
        log.info("rolling restart of %d workers", len(self.workers))
        for index, old in enumerate(list(self.workers)):
            if self._stopping:
                return
            # The new one first, so the port keeps its capacity while the old one drains.
            new = Worker(self._sock, self._env)
            self.workers.append(new)
            if not new.wait_ready(self._ready_timeout, lambda: self._stopping):
                if not self._stopping:
                    log.warning("worker %d did not become ready within %.0f s; rolling restart "
                                "stopped", new.pid, self._ready_timeout)
                self.workers.remove(new)
                new.stop(self._stop_timeout)
                return
            old.stop(self._stop_timeout)
            multiprocess.worker_exited(self._env[multiprocess.ENV], old.pid)
            self.workers.remove(new)
            self.workers[index] = new
            log.info("worker %d replaced by %d", old.pid, new.pid)
        log.info("rolling restart done")

    def _shutdown(self) -> int:
        for worker in self.workers:
            if worker.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout
        for worker in self.workers:
            worker.stop(max(0.0, deadline - time.monotonic()))
        self._sock.close()
        return 0


def worker_env(overrides: Mapping[str, object]) -> dict[str, str]:
    """The environment a worker reads its settings from: ours plus the command-line options."""
    env = dict(os.environ)
    env.update({f"ONAIR_{name.upper()}": str(value) for name, value in overrides.items()
                if value is not None})
    return env
