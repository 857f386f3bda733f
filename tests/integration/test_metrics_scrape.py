"""Issue 11 §1 and §3: a scrape of a running `onair serve` explains the service.

One server (subprocess, SQLite, Agora credentials of the test vectors) gets some of everything —
a stream, chat sends (created, retried, refused), a token, realtime joins (accepted and
refused), a chat row fanned out to the joined socket — and then every metric family exists, the
activity is counted, and every metric the alert rules and the Grafana dashboard query is one the
scrape exposes. ``--workers 2`` (Redis): requests spread over both workers and every scrape,
whichever worker answers, shows the sums over both.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
import yaml
from prometheus_client.parser import text_string_to_metric_families

from onair.auth.jwt import mint_key, mint_token
from onair.domain.identity import Role
from onair.metrics import Metrics
from tests.conftest import REDIS_URL, need_redis
from tests.integration.test_serve import wait_ready
from tests.integration.test_serve_workers import children_of, join_chat_inserts, wait_for

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
METRICS_TOKEN = "scrape-" + "m" * 30


def start_server(data_dir: Path, port: int, secret: str, *args: str,
                 **extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ONAIR_DATA_DIR": str(data_dir), "ONAIR_PORT": str(port),
           "ONAIR_JWT_SECRET": secret, "ONAIR_AGORA_APP_ID": APP_ID,
           "ONAIR_AGORA_APP_CERTIFICATE": CERT, "ONAIR_METRICS_TOKEN": METRICS_TOKEN,
           "ONAIR_BROKER_KEY_PREFIX": f"metrics-{uuid.uuid4().hex[:8]}:", **extra}
    for name in ("ONAIR_DATABASE_URL", "ONAIR_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR"):
        if name not in extra:
            env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "onair", "serve", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def scrape(base: str) -> dict[str, float]:
    """One scrape on a fresh connection: sample name + sorted labels -> value."""
    with httpx.Client() as client:
        response = client.get(f"{base}/metrics",
                              headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(value for key, value in samples.items()
               if key.split("{", 1)[0] == name and all(w in key for w in wanted))


def exposed_names(samples: dict[str, float]) -> set[str]:
    return {key.split("{", 1)[0] for key in samples}


def bearer(secret: str, user: str, role: Role) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(secret, user, role, 600)}"}


async def activity(port: int, secret: str) -> None:
    """A stream, chat, a token, realtime joins: something for every part to count."""
    base = f"http://127.0.0.1:{port}"
    seller = bearer(secret, "sally", Role.SELLER)
    buyer = bearer(secret, "bob", Role.BUYER)
    async with httpx.AsyncClient(base_url=base) as http:
        sid = (await http.post("/api/v1/streams", json={"title": "m"}, headers=seller)).json()["id"]
        assert (await http.post(f"/api/v1/streams/{sid}/start", headers=seller)).status_code == 200
        ws_url = (f"ws://127.0.0.1:{port}/realtime/v1/websocket"
                  f"?apikey={mint_key(secret, 'anon', 20 * 365 * 86400)}&vsn=1.0.0")
        async with websockets.connect(ws_url) as ws:
            topic = f"realtime:stream:{sid}"
            reply = await join_chat_inserts(ws, topic, sid)
            assert reply["payload"]["status"] == "ok"
            # a join with a forged token is refused (joins_refused{reason="invalid_token"})
            await ws.send(json.dumps({"topic": "realtime:other", "event": "phx_join", "ref": "2",
                                      "payload": {"config": {}, "access_token": "x.y.z"}}))
            while (reply := json.loads(await ws.recv()))["event"] != "phx_reply":
                pass
            assert reply["payload"]["status"] == "error"
            async with asyncio.timeout(15):  # the first sends may predate the broker subscription
                n = 0
                while True:
                    n += 1
                    sent = await http.post(f"/api/v1/streams/{sid}/chat", headers=buyer,
                                           json={"body": "hi", "client_msg_id": f"c{n}"})
                    assert sent.status_code == 201, sent.text
                    try:
                        async with asyncio.timeout(0.5):
                            while json.loads(await ws.recv())["event"] != "postgres_changes":
                                pass
                        break
                    except TimeoutError:
                        continue
        again = await http.post(f"/api/v1/streams/{sid}/chat", headers=buyer,
                                json={"body": "hi", "client_msg_id": "c1"})
        assert again.status_code == 200  # a retry: "duplicate"
        empty = await http.post(f"/api/v1/streams/{sid}/chat", headers=buyer,
                                json={"body": "   ", "client_msg_id": "blank"})
        assert empty.status_code == 422
        token = await http.post(f"/api/v1/streams/{sid}/rtc-token", headers=seller)
        assert token.status_code == 200, token.text
        refused = await http.post(f"/api/v1/streams/{uuid.uuid4()}/rtc-token", headers=buyer)
        assert refused.status_code == 404


@pytest.fixture(scope="module")
def one_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, float]]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret = secrets.token_hex(32)
    proc = start_server(tmp_path_factory.mktemp("metrics"), port, secret)
    try:
        wait_ready(port)
        asyncio.run(activity(port, secret))
        yield scrape(f"http://127.0.0.1:{port}")
    finally:
        stop_server(proc)


def family_names() -> set[str]:
    """Every family onair defines (from a fresh registry)."""
    return {family.name for family in Metrics().registry.collect()}


def sample_names() -> set[str]:
    """Every sample name a scrape can carry (counters' _total, histograms' _bucket …)."""
    return {sample.name for family in Metrics().registry.collect() for sample in family.samples}


def test_every_metric_family_is_in_a_scrape(one_server: dict[str, float]) -> None:
    exposed = exposed_names(one_server)
    missing = sorted(name for name in sample_names() - exposed if not name.endswith("_created"))
    assert not missing, missing
    for family in ("onair_realtime_flush_duration_seconds", "onair_group_commit_batch_size",
                   "onair_group_commit_duration_seconds", "onair_http_request_duration_seconds"):
        assert f"{family}_bucket" in exposed


def test_activity_is_counted(one_server: dict[str, float]) -> None:
    s = one_server
    assert total(s, "onair_chat_sends_total", outcome="created") >= 1
    assert total(s, "onair_chat_sends_total", outcome="duplicate") == 1
    assert total(s, "onair_chat_sends_total", outcome="body-empty") == 1
    assert total(s, "onair_tokens_issued_total", role="publisher") == 1
    assert total(s, "onair_tokens_refused_total", reason="stream-not-found") == 1
    assert total(s, "onair_realtime_joins_total") >= 1
    assert total(s, "onair_realtime_joins_refused_total", reason="invalid_token") == 1
    assert total(s, "onair_realtime_deliveries_total") >= 1
    assert total(s, "onair_realtime_writes_total") >= 1
    assert total(s, "onair_realtime_flush_duration_seconds_count") >= 1
    assert total(s, "onair_realtime_delivery_lag_seconds_count") >= 1
    assert total(s, "onair_realtime_delivery_lag_seconds_bucket", le="0.5") >= 1  # same host
    assert total(s, "onair_group_commit_batch_size_count", writer="chat") >= 2
    # the 404 is refused from the stream cache, without a transaction
    assert total(s, "onair_group_commit_duration_seconds_count", writer="tokens") == 1
    assert total(s, "onair_cache_lookups_total", cache="access", result="hit") >= 1
    assert total(s, "onair_broker_events_published_total") >= 1
    assert total(s, "onair_streams", status="live") == 1
    assert total(s, "onair_ready", check="database") == 1
    assert total(s, "onair_broker_up") == 1
    assert total(s, "onair_workers") == 1
    assert total(s, "onair_db_pool_capacity", pool="writer") == 1
    assert total(s, "onair_http_requests_total", route="/api/v1/streams/{stream_id}/chat") >= 3


# -- alert rules and dashboard only name what a scrape exposes ------------------------------------

_NAME = re.compile(r"\b(onair_[a-zA-Z0-9_]+)\b")


def rule_expressions() -> list[str]:
    groups = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"]
    return [rule.get("expr", "") for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/onair.json").read_text())
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            if isinstance(node.get("query"), str) and "onair_" in node["query"]:
                found.append(node["query"])  # template variables
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    return found


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_queries_name_only_exposed_metrics(one_server: dict[str, float], source: str) -> None:
    expressions = rule_expressions() if source == "alerts" else dashboard_expressions()
    assert len(expressions) >= 7
    named = {name for expr in expressions for name in _NAME.findall(expr)}
    assert named, "no onair_ metric named at all"
    assert named - exposed_names(one_server) == set()


def test_dashboard_panels_all_have_queries() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/onair.json").read_text())
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    assert len(panels) >= 12
    for panel in panels:
        assert panel.get("targets"), panel.get("title")
        assert all(_NAME.search(t["expr"]) for t in panel["targets"]), panel.get("title")


# -- two workers ------------------------------------------------------------------------------------

def per_worker_counts(metrics_dir: Path, name: str, **labels: str) -> dict[int, float]:
    """A counter's value in each worker's own file (the parts a scrape adds up)."""
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        families = MultiProcessCollector.merge([str(path)], accumulate=True)
        out[pid] = sum(sample.value for family in families for sample in family.samples
                       if sample.name == name
                       and all(sample.labels.get(k) == v for k, v in labels.items()))
    return out


def test_two_workers_answer_for_the_whole_server(tmp_path: Path, free_port: int) -> None:
    need_redis()
    secret = secrets.token_hex(32)
    proc = start_server(tmp_path, free_port, secret, "--workers", "2", ONAIR_BROKER_URL=REDIS_URL,
                        ONAIR_METRICS_SYNC_INTERVAL="0.2")
    base = f"http://127.0.0.1:{free_port}"
    try:
        wait_ready(free_port)
        wait_for(lambda: len(children_of(proc.pid)) == 2, "two workers run")
        workers = children_of(proc.pid)
        environ = Path(f"/proc/{next(iter(workers))}/environ").read_bytes().split(b"\0")
        metrics_dir = Path(next(e for e in environ
                                if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")).split(b"=", 1)[1]
                           .decode())
        requests = 60
        for _ in range(requests):
            with httpx.Client() as client:  # a new connection: the kernel picks a worker
                assert client.get(f"{base}/healthz").status_code == 200
        seller = bearer(secret, "sally", Role.SELLER)
        sid = httpx.post(f"{base}/api/v1/streams", json={"title": "w"}, headers=seller).json()["id"]
        assert httpx.post(f"{base}/api/v1/streams/{sid}/start", headers=seller).status_code == 200
        sends = 20
        for i in range(sends):
            with httpx.Client() as client:
                r = client.post(f"{base}/api/v1/streams/{sid}/chat",
                                headers=bearer(secret, f"buyer{i}", Role.BUYER),
                                json={"body": f"m{i}", "client_msg_id": f"c{i}"})
                assert r.status_code == 201, r.text
        reports = 10  # playback telemetry from pages, each batch on its own connection
        for i in range(reports):
            with httpx.Client() as client:
                r = client.post(f"{base}/api/v1/telemetry", headers=bearer(secret, f"viewer{i}", Role.BUYER),
                                json={"page": "watch", "events": [
                                    {"kind": "start"}, {"kind": "video_problem", "problem": "black"}]})
                assert r.json() == {"accepted": 2}, r.text
        time.sleep(1)  # > ONAIR_METRICS_SYNC_INTERVAL: every worker copied its counters
        # both workers answered some of the requests, telemetry included
        telemetry_parts = per_worker_counts(metrics_dir, "onair_playback_sessions_total", page="watch")
        assert sum(telemetry_parts.values()) == reports
        parts = per_worker_counts(metrics_dir, "onair_http_requests_total", route="/healthz")
        assert sum(parts.values()) == requests
        assert sum(1 for value in parts.values() if value > 0) == 2, parts
        chat_route = "/api/v1/streams/{stream_id}/chat"
        previous = 0.0
        for _ in range(12):  # each scrape on a new connection, answered by either worker
            s = scrape(base)
            assert total(s, "onair_workers") == 2
            assert total(s, "onair_http_requests_total", route="/healthz") == requests
            assert total(s, "onair_http_requests_total", route=chat_route, status="201") == sends
            assert total(s, "onair_chat_sends_total", outcome="created") == sends
            assert total(s, "onair_playback_sessions_total", page="watch") == reports
            assert total(s, "onair_playback_video_problems_total", page="watch", problem="black") == reports
            scrapes = total(s, "onair_http_requests_total", route="/metrics")
            assert scrapes >= previous  # monotonic across scrapes, whoever answers
            previous = scrapes
        # A worker that dies leaves its counts in the sums; its live gauges go.
        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(children_of(proc.pid)) == 2 and victim not in children_of(proc.pid),
                 "the killed worker is replaced")
        wait_for(lambda: total(scrape(base), "onair_workers") == 2, "the new worker reports")
        for _ in range(6):
            s = scrape(base)
            assert total(s, "onair_http_requests_total", route="/healthz") == requests
            assert total(s, "onair_chat_sends_total", outcome="created") == sends
            assert total(s, "onair_workers") in (1, 2)  # the dead worker's gauge is gone
    finally:
        stop_server(proc)
    assert not metrics_dir.exists()  # the supervisor cleans up after itself
