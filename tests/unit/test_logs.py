"""One logging setup: structlog and stdlib records become the same JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from onair.logs import REQUEST_ID, configure_logging, log_failure, outage_reason


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, structlog.get_config())
    stream = io.StringIO()
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        structlog.configure(**saved[2])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_stdlib_and_structlog_records_are_the_same_json(captured: io.StringIO) -> None:
    configure_logging("info", json=True, stream=captured)
    token = REQUEST_ID.set("req-1")
    try:
        logging.getLogger("onair.broker.redis").info("redis broker: connected, %d topic(s)", 3)
        structlog.get_logger("onair.chat").info("chat_sent", stream_id="s1")
        logging.getLogger("onair.realtime").warning("relay failed", extra={"topic": "t"})
    finally:
        REQUEST_ID.reset(token)
    stdlib, native, extra = lines(captured)
    for record in (stdlib, native, extra):
        assert {"timestamp", "level", "logger", "event", "pid"} <= record.keys()
        assert record["timestamp"].endswith("Z")
        assert record["request_id"] == "req-1"
    assert stdlib["event"] == "redis broker: connected, 3 topic(s)"
    assert (stdlib["logger"], stdlib["level"]) == ("onair.broker.redis", "info")
    assert (native["logger"], native["level"], native["stream_id"]) == ("onair.chat", "info", "s1")
    assert (extra["level"], extra["topic"]) == ("warning", "t")


def test_the_level_applies_to_both(captured: io.StringIO) -> None:
    configure_logging("warning", json=True, stream=captured)
    logging.getLogger("onair.broker.redis").info("dropped")
    structlog.get_logger("onair.chat").info("dropped too")
    logging.getLogger("onair.broker.redis").warning("kept")
    structlog.get_logger("onair.chat").error("kept too")
    assert [r["event"] for r in lines(captured)] == ["kept", "kept too"]


def test_console_format_is_one_line_each(captured: io.StringIO) -> None:
    configure_logging("info", json=False, stream=captured)
    logging.getLogger("onair.workers").info("supervising")
    structlog.get_logger("onair.server").info("draining")
    out = captured.getvalue().splitlines()
    assert len(out) == 2 and "supervising" in out[0] and "draining" in out[1]


def test_handled_outages_warn_without_traceback_bugs_keep_it(captured: io.StringIO) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from sqlalchemy.exc import OperationalError

    from onair.broker.base import BrokerUnavailable

    configure_logging("info", json=True, stream=captured)
    log = logging.getLogger("onair.realtime")
    outages = [BrokerUnavailable("redis broker unavailable: refused"),
               RedisConnectionError("Connection reset by peer"), ConnectionRefusedError(111, "no"),
               TimeoutError(), OperationalError("SELECT 1", {}, Exception("server closed"))]
    for exc in outages:
        log_failure(log, "realtime: subscribe %s failed", "t", exc=exc)
    try:
        raise KeyError("bug")
    except KeyError as exc:
        log_failure(log, "realtime: subscribe %s failed", "t", exc=exc)
    *handled, bug = lines(captured)
    assert [r["level"] for r in handled] == ["warning"] * len(outages)
    assert not any("exception" in r for r in handled)
    assert handled[0]["event"].startswith("realtime: subscribe t failed (BrokerUnavailable: ")
    assert bug["level"] == "error" and "KeyError" in bug["exception"]


@given(st.sampled_from([ValueError, KeyError, AssertionError, RuntimeError, TypeError,
                        AttributeError, ZeroDivisionError]), st.text(max_size=50))
def test_programming_errors_are_never_outages(kind: type[Exception], message: str) -> None:
    assert outage_reason(kind(message)) is None


_WRITER = """
import logging, os, sys, time
import structlog
from onair.logs import configure_logging

with open(sys.argv[1], "a") as out:  # like `onair serve >> log`: every worker appends to one file
    configure_logging("info", json=True, stream=out)
    filler = sys.argv[2] * 20_000  # past the 8 KiB buffer: print() would write it in two pieces
    time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # both start at once
    for i in range(1000):
        structlog.get_logger("onair.chat").info("long", i=i, filler=filler)
        logging.getLogger("onair.realtime").warning("long %d %s", i, filler)
"""


def test_workers_logging_to_one_file_never_splice_lines(tmp_path: Any) -> None:
    """Two processes log long lines to one appended file at once: every line is one whole
    JSON record (each is written in one write(2), not the text and then its newline)."""
    import subprocess
    import sys

    path = tmp_path / "shared.log"
    import time

    start = str(time.time() + 3)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), mark, start]) for mark in "ab"]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 4000
    for record in records:
        text = record.get("filler") or record["event"].split(" ", 2)[2]
        assert text in ("a" * 20_000, "b" * 20_000)
