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
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import Server, ServerState

from onair.realtime.server import RealtimeWebSocketProtocol
from onair.realtime.wiring import server_options
from onair.server_process import OnairServer
from onair.settings import Settings

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# What RealtimeWebSocketProtocol reads or writes of its base class.
STATE = ("conn", "app_state", "handshake_initiated", "handshake_complete", "close_sent",
         "close_timeout", "loop", "tasks", "client", "queue", "writable")
# assigned by the base class later (connection_made, handshake, frames arriving)
SET_LATER = ("transport", "frames", "curr_msg_data_type", "close_timer", "request")
# The shell swaps the ASGI queue and ``writable`` event of realtime connections for a stand-in
# (server._Unused) that has only these; outside the ASGI app (not run for realtime) the base
# class must call nothing else on them.
STAND_IN = {"queue": {"put_nowait", "empty", "get"}, "writable": {"set", "clear", "wait"}}
ASGI_ONLY = {"get", "wait"}  # called only from receive()/send(), the ASGI app's side
METHODS = ("handle_connect", "handle_close", "send_receive_event_to_app", "connection_lost",
           "pause_writing", "resume_writing", "connection_made", "data_received", "shutdown")
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
    loop = asyncio.new_event_loop()
    try:
        proto = WebSocketsSansIOProtocol(Config(app=lambda *a: None), ServerState(), {}, loop)
        missing = [name for name in STATE if not hasattr(proto, name)]
        source = inspect.getsource(WebSocketsSansIOProtocol)
        missing += [name for name in SET_LATER if f"self.{name} =" not in source]
        missing += [name for name in METHODS if not callable(getattr(WebSocketsSansIOProtocol, name, None))]
        for attr, known in STAND_IN.items():
            used = set(re.findall(rf"self\.{attr}\.(\w+)", source))
            missing += [f"{attr}.{m} (unknown to server._Unused)" for m in used - known]
            outside = re.sub(r"async def (receive|send)\(.*?(?=\n    def |\n    async def |\Z)", "", source, flags=re.S)
            missing += [f"{attr}.{m} outside the ASGI path" for m in set(re.findall(rf"self\.{attr}\.(\w+)", outside)) & ASGI_ONLY]
        for name in ("available_extensions", "accept", "reject", "send_response", "data_to_send",
                     "send_close"):
            if not hasattr(proto.conn, name):
                missing.append(f"conn.{name}")
    finally:
        loop.close()
    assert missing == [], f"uvicorn {version('uvicorn')} lacks {missing}: re-check realtime/server.py"


def test_the_pinned_range_starts_where_the_shell_works() -> None:
    """The sans-I/O protocol arrived in uvicorn 0.35, but until 0.52 it lacked ``close_timeout``
    and ``close_timer`` (and ``frames`` before 0.52), which the shell's close path uses: the
    test above fails on 0.35.0-0.52.0 and passes on 0.53.0-0.55.0 (checked by installing each)."""
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


@pytest.mark.parametrize("option", ["ws", "ws_max_size"])
def test_uvicorn_takes_the_realtime_options(option: str) -> None:
    """``ws=`` must still accept a protocol class (not only a name) for the shell to be used."""
    options = server_options(Settings())
    config = Config(app=lambda *a: None, **options)
    config.load()
    assert getattr(config, option) == options[option]
    assert config.ws_protocol_class is RealtimeWebSocketProtocol
