"""The official JS clients (@supabase/supabase-js and @supabase/realtime-js 2.119, from npm)
against a real ``onair serve``: vsn 2.0.0 with binary broadcasts, and vsn 1.0.0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.onair_server import OnairServer, run_server
from tests.conftest import need

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def js_clients() -> Path:
    """Install the pinned npm packages into the test-owned folder (once)."""
    need(shutil.which("node") is not None and shutil.which("npm") is not None, "Node.js and npm not installed")
    if not (JS_DIR / "node_modules" / "@supabase" / "supabase-js").exists():
        result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR,
                                capture_output=True, text=True, timeout=300)
        need(result.returncode == 0, f"npm install failed: {result.stderr[-300:]}")
    return JS_DIR


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    with run_server(tmp_path_factory.mktemp("onair-js")) as srv:
        yield srv


@pytest.mark.node
def test_official_js_clients(js_clients: Path, server: OnairServer) -> None:
    seller = server.token("js-seller", "seller")
    env = {
        **os.environ, "ONAIR_URL": server.url, "ANON_KEY": server.anon_key, "SELLER_TOKEN": seller,
        "SELLER_TOKEN_2": server.token("js-seller", "seller", ttl=7200), "VIEWER_TOKEN": server.token("js-viewer"),
        "STREAM_X": server.create_live_stream(seller), "STREAM_Y": server.create_live_stream(seller),
    }
    run = subprocess.run(["node", "compat.mjs"], cwd=js_clients, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    r = json.loads(run.stdout.strip().splitlines()[-1])
    assert r["subscribe_supabase_js"] == "SUBSCRIBED"
    assert r["subscribe_realtime_js"] == "SUBSCRIBED"
    assert r["subscribe_v1"] == "SUBSCRIBED"
    assert r["ack"] == "ok"
    assert r["self_received"] == [{"from": "js", "n": 1}]
    assert r["other_received"] == [{"from": "js", "n": 1}]
    assert r["v1_received"] == [{"from": "js", "n": 1}]  # binary push from 2.0.0, delivered as JSON to 1.0.0
    assert r["other_received_from_v1"] == [{"from": "v1"}]
    assert r["track"] == "ok" and r["presence_join"] and r["presence_leave"]
    assert r["subscribe_changes"] == "SUBSCRIBED"
    assert r["viewer_join_x"] == 200 and r["viewer_join_y"] == 200
    assert r["changes"] == [{"eventType": "INSERT", "table": "stream_viewers", "stream_id": env["STREAM_X"], "user_id": "js-viewer"}]
    assert r["viewer_counts"] == [1]
    assert r["after_refresh"] == "joined"
    assert r["private_anon"][0] == "CHANNEL_ERROR" and "Unauthorized" in r["private_anon"][1]
    assert r["subscribe_buyer"] == "SUBSCRIBED" and r["buyer_sends"] == ["error", "ok"]
    assert r["buyer_forged"] == ["error"] * 8  # STREAM_STATE, WEBRTC:signal, ſtream_state, ...
    assert r["seller_named_forged"] == []  # realtime-js's stream_state/webrtc:signal listeners got none
    assert r["seller_saw"] == ["reaction", "reaction"]  # the buyer's "stream_state" was dropped
    # issue 11 §5: the end closes the stream's channel after the final state, as a normal close
    assert r["end_status"] == 200
    assert r["end_seen"] == [["state", "ended"], ["system", "ok", "The stream has ended"]]
    assert r["end_states"] == ["SUBSCRIBED", "CLOSED"] and r["end_channel_state"] == "closed"
