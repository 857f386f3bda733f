"""The test process names where a socket that was never closed was made (tests/socket_origins.py)."""

from __future__ import annotations

import socket
import sys
from types import SimpleNamespace

from tests.socket_origins import annotated, origin_of


def a_helper_that_makes_a_socket() -> socket.socket:
    return socket.socket()


def test_every_socket_knows_the_code_that_made_it() -> None:
    with a_helper_that_makes_a_socket() as sock:
        origin = origin_of(sock)
        assert origin is not None
        assert "a_helper_that_makes_a_socket" in origin
        assert "test_every_socket_knows_the_code_that_made_it" in origin
        assert sys.unraisablehook.__qualname__ == "install.<locals>.hook"


def test_the_report_of_an_unclosed_socket_carries_its_origin() -> None:
    with a_helper_that_makes_a_socket() as sock:
        report = SimpleNamespace(exc_type=ResourceWarning, exc_value=ResourceWarning("unclosed"),
                                 exc_traceback=None, err_msg=None, object=sock)
        said = annotated(report)
        assert said.err_msg.startswith("Exception ignored in (a socket made at:")
        assert "a_helper_that_makes_a_socket" in said.err_msg
        assert said.object is sock and said.exc_value is report.exc_value
    other = SimpleNamespace(err_msg=None, object=object())
    assert annotated(other) is other
