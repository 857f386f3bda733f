"""The uvicorn server of one onair process: start-up housekeeping and a bounded, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator

import structlog
import uvicorn

log = structlog.get_logger("onair.server")

READY_FD_ENV = "ONAIR_READY_FD"  # set by `serve --workers`: a pipe to report "accepting" on


class OnairServer(uvicorn.Server):
    """uvicorn's server, made for a long-running onair process.

    * SIGINT/SIGTERM drain the process within ``shutdown_timeout`` seconds: stop accepting
      (with ``--workers`` the other workers keep the port), close realtime sockets with 1012
      "service restart" (every Supabase client reconnects on an unrequested close), let requests
      in flight finish (their chat rows are committed before their 201 goes out), then stop the
      services (queued commits and events flushed, broker and pools closed) and exit 0. uvicorn
      would re-raise the captured signal afterwards, which ends the process with status -15 and
      looks like a crash to supervisors and tests. What still runs at the deadline is cancelled.
    * After startup, everything built so far (modules, the app, pools, caches' skeletons) lives
      as long as the process, so it is moved out of the garbage collector's sight
      (``gc.freeze``): full collections re-scanning it took 45–70 ms here, a stall every few
      seconds that set the p99 of every request under load (`bench/tokens.py http`).
    """

    # Of the stop budget, requests in flight get this share; stopping the services the rest.
    REQUEST_SHARE = 0.7

    def __init__(self, config: uvicorn.Config, shutdown_timeout: float = 10.0) -> None:
        super().__init__(config)
        self.shutdown_timeout = shutdown_timeout

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        gc.collect()
        gc.freeze()
        if self.started:
            _report_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        started = time.monotonic()
        logging.getLogger("uvicorn.error").addFilter(_CutAtDeadline())
        log.info("draining", timeout_seconds=self.shutdown_timeout,
                 connections=len(self.server_state.connections))
        # typed int, but uvicorn waits with asyncio.wait_for/timeout: a float works
        self.config.timeout_graceful_shutdown = max(  # type: ignore[assignment]
            0.1, self.shutdown_timeout * self.REQUEST_SHARE)
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await super().shutdown(sockets=sockets)
        except TimeoutError:
            log.warning("shutdown_timeout_exceeded", timeout_seconds=self.shutdown_timeout)
        else:
            log.info("stopped", seconds=round(time.monotonic() - started, 3))

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _CutAtDeadline(logging.Filter):
    """Requests still running at the stop deadline are cancelled on purpose (their clients get
    no 201 and retry elsewhere): uvicorn reports each as an error with a CancelledError traceback,
    which reads like a bug. Say it once per request, as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        cancelled = record.exc_info is not None and isinstance(
            record.exc_info[1], asyncio.CancelledError)
        message = record.getMessage()
        # uvicorn logs the lifespan's traceback as the message itself
        stop_cut = message.startswith("Traceback") and message.rstrip().endswith("CancelledError")
        if cancelled or stop_cut or message.startswith("Cancel "):
            if cancelled:
                record.msg, record.args = "request cancelled at the shutdown deadline", ()
                record.exc_info = record.exc_text = None
            elif stop_cut:
                record.msg, record.args = "stopping the services cancelled at the deadline", ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _report_ready() -> None:
    """Tell the supervisor (if it asked) that this worker accepts connections now."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    with contextlib.suppress(OSError, ValueError):
        os.write(int(fd), b"1")
        os.close(int(fd))
