"""Structured logs: one JSON line per message on stdout, from structlog and stdlib loggers alike.

Each line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and ``event``, plus the request
id of the request it belongs to (and whatever the call site added: ``stream_id``, ``topic``, …).
structlog loggers (``onair.chat``, ``onair.access``, …) render straight to stdout; stdlib loggers
(``onair.broker.redis``, ``onair.realtime``, uvicorn, …) go through the root handler, whose
``ProcessorFormatter`` runs the same processors, so both kinds look the same and honour the same
level (``ONAIR_LOG_LEVEL``) and format (``ONAIR_LOG_JSON``).

Levels: ``error`` (with a traceback) is for bugs — something the code did not expect;
``warning`` (no traceback) for handled conditions an operator may act on (broker outage, a
failed publish); ``info`` for recoveries and lifecycle (connected, reconnected, draining).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, TextIO

import structlog

# One context variable of our own instead of structlog's bind_contextvars: binding and unbinding
# through structlog creates and looks up variables per key, a measurable share of a chat send.
REQUEST_ID: ContextVar[str | None] = ContextVar("onair_request_id", default=None)

_HANDLER_MARK = "_onair_handler"
_PID = os.getpid()


def add_request_id(_: Any, __: str,
                   event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


_WRITE_LOCK = threading.Lock()


def write_line(stream: TextIO, line: str) -> None:
    """``line`` and its newline in one ``write(2)``: the workers of ``serve --workers`` share
    stdout, and a line written in pieces (``print`` writes the text, then the newline; a long
    line bypasses the buffer) can get another process's line spliced into it. One write to a
    pipe is atomic up to PIPE_BUF (4 KiB), to a file opened for appending at any size."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # no file descriptor (StringIO, test capture)
        stream.write(line + "\n")
        stream.flush()
        return
    data = memoryview((line + "\n").encode("utf-8", "backslashreplace"))
    with _WRITE_LOCK:
        stream.flush()  # anything written to it the ordinary way goes first
        while data:
            data = data[os.write(fd, data):]  # more than one turn only after a partial write


class _NamedPrintLogger(structlog.PrintLogger):
    """A print logger that remembers the name it was asked for (for ``add_logger_name``) and
    writes each line in one piece."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name

    def msg(self, message: str) -> None:
        write_line(self._file, message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler, writing each record in one piece (see ``write_line``)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.stream, self.format(record))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class _NamedPrintLoggerFactory:
    def __init__(self, file: TextIO | None = None) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedPrintLogger:
        name = args[0] if args and isinstance(args[0], str) else "onair"
        return _NamedPrintLogger(self._file or sys.stdout, name)


def _add_pid(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict["pid"] = _PID  # tells the workers of `serve --workers` apart
    return event_dict


def _shared_processors() -> list[structlog.types.Processor]:
    global _PID
    _PID = os.getpid()
    return [
        structlog.contextvars.merge_contextvars,
        _add_pid,
        add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str = "info", json: bool = True, stream: TextIO | None = None) -> None:
    """Set up every logger of the process: structlog's and the standard library's root."""
    level_no = logging.getLevelNamesMapping()[level.upper()]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared = _shared_processors()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=_NamedPrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    handler = _LineHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):  # ours from an earlier call, or a library's basicConfig
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_no)
    # Chatty at info about things that are not the operator's business.
    for name, floor in (("alembic", logging.WARNING), ("httpx", logging.WARNING),
                        ("httpcore", logging.WARNING), ("asyncio", logging.WARNING)):
        logging.getLogger(name).setLevel(max(floor, level_no))


# --- handled outages vs bugs -------------------------------------------------------------------

# Exceptions that mean "a service we depend on is unreachable or gave up", by (module, name) so
# that this module (imported by the small `--workers` supervisor) imports none of their libraries.
_OUTAGE_TYPES = frozenset({
    ("onair.broker.base", "BrokerUnavailable"),
    ("redis.exceptions", "ConnectionError"),
    ("redis.exceptions", "TimeoutError"),
    ("redis.exceptions", "BusyLoadingError"),
    ("redis.exceptions", "ReadOnlyError"),
    ("sqlalchemy.exc", "OperationalError"),
    ("sqlalchemy.exc", "InterfaceError"),
    ("sqlalchemy.exc", "DisconnectionError"),
    ("sqlalchemy.exc", "TimeoutError"),
    ("asyncpg.exceptions", "ConnectionDoesNotExistError"),
    ("asyncpg.exceptions", "CannotConnectNowError"),
    ("asyncpg.exceptions", "TooManyConnectionsError"),
})


def outage_reason(exc: BaseException) -> str | None:
    """One line saying why, if ``exc`` is an outage of the broker or the database (expected,
    handled: log it as a warning without a traceback); None if it is a bug (log the traceback)."""
    if isinstance(exc, OSError):  # ConnectionError, TimeoutError (asyncio's too), refused, reset
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    for cls in type(exc).__mro__:
        if (cls.__module__, cls.__qualname__) in _OUTAGE_TYPES:
            detail = str(exc).splitlines()[0] if str(exc) else ""
            return f"{type(exc).__name__}: {detail[:300]}" if detail else type(exc).__name__
    return None


def log_failure(logger: logging.Logger, message: str, *args: object,
                exc: BaseException) -> None:
    """A failure a caller has handled: a warning with the reason if it is an outage, an error
    with the traceback if it is a bug."""
    reason = outage_reason(exc)
    if reason is None:
        logger.error(message, *args, exc_info=exc)
    else:
        logger.warning(message + " (%s)", *args, reason)  # noqa: G003 (message is a %-format)
