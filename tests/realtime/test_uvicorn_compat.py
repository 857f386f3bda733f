"""The realtime shell (realtime/server.py) extends uvicorn's sans-I/O WebSocket protocol class and
uses some of its private state to share pre-framed bytes (issue 12 §2). pyproject pins the uvicorn
range this was tested with; this test fails loudly, naming what is missing, when an installed
uvicorn no longer has what the shell relies on — before any socket misbehaves."""

from __future__ import annotations

import asyncio
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import Server, ServerState

from onair.realtime.server import RealtimeHttpProtocol, RealtimeWebSocketProtocol
from onair.realtime.wiring import server_options
from onair.server_process import OnairServer
from onair.settings import Settings

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# What RealtimeWebSocketProtocol reads or writes of its base class (the handshake, then the hand-over
# of the transport and of its place in ``connections`` to a RealtimeSocket).
STATE = ("conn", "app_state", "handshake_initiated", "handshake_complete", "close_sent",
         "tasks", "client", "connections")
# assigned by the base class later (connection_made, handshake)
SET_LATER = ("transport", "request")
METHODS = ("handle_connect", "connection_made", "data_received")
CONN = ("available_extensions", "accept", "reject", "send_response", "data_to_send", "max_size",
        "parser")
# What RealtimeHttpProtocol.data_received (uvicorn's, plus the bytes after an upgrade) uses.
HTTP = ("_unset_keepalive_if_required", "_should_upgrade", "_unsupported_upgrade_warning",
        "handle_websocket_upgrade", "send_400_response")
# What server_process.OnairServer overrides or reads of uvicorn.Server.
SERVER_METHODS = ("startup", "shutdown", "capture_signals", "handle_exit")


def _pinned_range() -> SpecifierSet:
    match = re.search(r'"uvicorn\[standard\]([^"]+)"', PYPROJECT.read_text())
    assert match, "pyproject.toml names no uvicorn range"
    return SpecifierSet(match.group(1))


def test_the_installed_uvicorn_is_in_the_tested_range() -> None:
    assert Version(version("uvicorn")) in _pinned_range()


def test_the_base_class_still_has_what_the_shell_uses() -> None:
    assert issubclass(RealtimeWebSocketProtocol, WebSocketsSansIOProtocol)
    assert issubclass(RealtimeHttpProtocol, HttpToolsProtocol)
    loop = asyncio.new_event_loop()
    try:
        proto = WebSocketsSansIOProtocol(Config(app=lambda *a: None), ServerState(), {}, loop)
        missing = [name for name in STATE if not hasattr(proto, name)]
        source = inspect.getsource(WebSocketsSansIOProtocol)
        missing += [name for name in SET_LATER if f"self.{name} =" not in source]
        missing += [name for name in METHODS if not callable(getattr(WebSocketsSansIOProtocol, name, None))]
        missing += [f"conn.{name}" for name in CONN if not hasattr(proto.conn, name)]
        missing += [f"HttpToolsProtocol.{name}" for name in HTTP if not callable(getattr(HttpToolsProtocol, name, None))]
        # the upgrade: the new protocol object is the transport's before it reads the request,
        # so a protocol that hands the transport on (set_protocol) is the last one set
        upgrade = inspect.getsource(HttpToolsProtocol.handle_websocket_upgrade)
        if upgrade.find("set_protocol(protocol)") > upgrade.find("protocol.data_received(") or "set_protocol" not in upgrade:
            missing.append("handle_websocket_upgrade: set_protocol before data_received")
        # ... and it reads the request alone, rebuilt from the headers (no frame bytes behind it)
        if 'output.append(b"\\r\\n")' not in upgrade or "protocol.data_received(b\"\".join(output))" not in upgrade:
            missing.append("handle_websocket_upgrade: the ws protocol gets the rebuilt request alone")
        http_source = inspect.getsource(HttpToolsProtocol.data_received)
        if "HttpParserUpgrade" not in http_source or "HttpParserError" not in http_source:
            missing.append("HttpToolsProtocol.data_received: the code RealtimeHttpProtocol repeats")
        # a stopping server calls shutdown() on every object in server_state.connections
        if "connection.shutdown()" not in inspect.getsource(Server.shutdown):
            missing.append("Server.shutdown: connection.shutdown()")
    finally:
        loop.close()
    assert missing == [], f"uvicorn {version('uvicorn')} lacks {missing}: re-check realtime/server.py"


def test_the_pinned_range_starts_where_the_shell_works() -> None:
    """The sans-I/O protocol arrived in uvicorn 0.35, but until 0.52 it lacked ``close_timeout``
    and ``close_timer`` (and ``frames`` before 0.52), which the shell's close path used while
    realtime sockets stayed on uvicorn's class: the test above then failed on 0.35.0-0.52.0 and
    passed on 0.53.0-0.55.0 (checked by installing each). Since the hand-over to RealtimeSocket
    the shell needs less of uvicorn; the range was not re-checked and stays."""
    assert Version("0.52.0") not in _pinned_range()
    assert Version("0.53.0") in _pinned_range()


def test_the_server_hooks_the_process_overrides_are_still_there() -> None:
    assert issubclass(OnairServer, Server)
    missing = [name for name in SERVER_METHODS if not callable(getattr(Server, name, None))]
    for name in ("startup", "shutdown"):
        method = getattr(Server, name, None)
        if method is not None and "sockets" not in inspect.signature(method).parameters:
            missing.append(f"{name}(sockets=)")
    server = Server(Config(app=lambda *a: None))
    missing += [name for name in ("started", "server_state", "config", "should_exit")
                if not hasattr(server, name)]
    if not hasattr(server.server_state, "connections"):
        missing.append("server_state.connections")
    if not hasattr(server.config, "timeout_graceful_shutdown"):
        missing.append("config.timeout_graceful_shutdown")
    assert missing == [], f"uvicorn {version('uvicorn')} lacks {missing}: re-check server_process.py"


@pytest.mark.parametrize("option", ["http", "ws", "ws_max_size"])
def test_uvicorn_takes_the_realtime_options(option: str) -> None:
    """``ws=`` must still accept a protocol class (not only a name) for the shell to be used."""
    options = server_options(Settings())
    config = Config(app=lambda *a: None, **options)
    config.load()
    assert getattr(config, option) == options[option]
    assert config.ws_protocol_class is RealtimeWebSocketProtocol
    assert config.http_protocol_class is RealtimeHttpProtocol
