"""POST /api/v1/telemetry against the running app (SQLite): what is counted, what is refused and
how, and that no client — anonymous, signed in, flooding or malformed — grows the label sets or
gets more than its bounded share of work."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from onair.context import AppContext
from onair.domain.clock import FakeClock
from onair.settings import Settings
from tests.apps import asgi_client, running_context
from tests.conftest import UserFactory

URL = "/api/v1/telemetry"
GOOD = {"page": "watch", "events": [
    {"kind": "start"}, {"kind": "first_frame", "seconds": 1.5},
    {"kind": "video_problem", "problem": "black"}, {"kind": "stall", "seconds": 0.8},
    {"kind": "reconnect", "link": "realtime"}, {"kind": "media_failure", "reason": "peer-lost"},
    {"kind": "layer", "layer": "low"}, {"kind": "rtt", "seconds": 0.04}]}


@pytest.fixture
def backend(data_dir: Path) -> dict[str, Any]:
    """Telemetry stores nothing: SQLite is enough (the app still needs a database to start)."""
    return {"data_dir": data_dir}


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    series = {}
    for line in text.splitlines():
        if line.startswith("onair_playback_") and "_created" not in line:
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return series


def problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == type_ and body["status"] == status
    return body


async def test_a_batch_becomes_playback_metrics(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(URL, json=GOOD)
    assert response.status_code == 202 and response.json() == {"accepted": 8}
    m = await scrape(app_client)
    assert m['onair_playback_sessions_total{page="watch"}'] == 1
    assert m['onair_playback_video_problems_total{page="watch",problem="black"}'] == 1
    assert m['onair_playback_video_problems_total{page="studio",problem="black"}'] == 0
    assert m['onair_playback_time_to_first_frame_seconds_bucket{le="2.0",page="watch"}'] == 1
    assert m['onair_playback_time_to_first_frame_seconds_bucket{le="1.0",page="watch"}'] == 0
    assert m['onair_playback_stall_duration_seconds_sum{page="watch"}'] == pytest.approx(0.8)
    assert m['onair_playback_reconnects_total{link="realtime",page="watch"}'] == 1
    assert m['onair_playback_media_failures_total{page="watch",reason="peer-lost"}'] == 1
    assert m['onair_playback_layer_choices_total{layer="low",page="watch"}'] == 1
    assert m['onair_playback_realtime_rtt_seconds_count{page="watch"}'] == 1
    assert m['onair_playback_reports_total{outcome="accepted"}'] == 1


BAD_BODIES: list[tuple[bytes, str]] = [
    (b"not json", "body"),
    (b"[]", "body"),
    (b'{"page":"watch","events":[{"kind":"start"}],"user":"x"}', "body.user"),
    (b'{"page":"admin","events":[{"kind":"start"}]}', "body.page"),
    (b'{"page":"WATCH","events":[{"kind":"start"}]}', "body.page"),
    (b'{"page":"watch","events":[]}', "body.events"),
    (b'{"page":"watch","events":{"kind":"start"}}', "body.events"),
    (b'{"page":"watch","events":["start"]}', "body.events.0"),
    (b'{"page":"watch","events":[{"kind":"Start"}]}', "body.events.0.kind"),
    (b'{"page":"watch","events":[{"kind":"__proto__"}]}', "body.events.0.kind"),
    (b'{"page":"watch","events":[{"kind":"start","seconds":1}]}', "body.events.0.seconds"),
    (b'{"page":"watch","events":[{"kind":"video_problem","problem":"purple"}]}',
     "body.events.0.problem"),
    (b'{"page":"watch","events":[{"kind":"media_failure","reason":"user-42"}]}',
     "body.events.0.reason"),
    (b'{"page":"watch","events":[{"kind":"layer","layer":"4k"}]}', "body.events.0.layer"),
    (b'{"page":"watch","events":[{"kind":"reconnect"}]}', "body.events.0.link"),
    (b'{"page":"watch","events":[{"kind":"stall"}]}', "body.events.0.seconds"),
    (b'{"page":"watch","events":[{"kind":"stall","seconds":-1}]}', "body.events.0.seconds"),
    (b'{"page":"watch","events":[{"kind":"stall","seconds":1e308}]}', "body.events.0.seconds"),
    (b'{"page":"watch","events":[{"kind":"stall","seconds":"1"}]}', "body.events.0.seconds"),
    (b'{"page":"watch","events":[{"kind":"stall","seconds":true}]}', "body.events.0.seconds"),
    (b'{"page":"watch","events":[{"kind":"rtt","seconds":NaN}]}', "body"),
    (b'{"page":"watch","events":[{"kind":"start"},{"kind":"rtt","seconds":99999}]}',
     "body.events.1.seconds"),
    (b"[" * 5000 + b"]" * 5000, "body"),
    (orjson.dumps({"page": "watch", "events": [{"kind": "start"}] * 65}), "body.events"),
]


@pytest.mark.parametrize(("raw", "loc"), BAD_BODIES)
async def test_bad_reports_are_refused_whole_and_change_no_metric(
        app_client: httpx.AsyncClient, raw: bytes, loc: str) -> None:
    before = await scrape(app_client)
    response = await app_client.post(URL, content=raw, headers={"content-type": "application/json"})
    body = problem(response, 422, "validation-error")
    assert body["detail"].startswith(loc + ":") or body["detail"].startswith(loc), body
    after = await scrape(app_client)
    assert after.pop('onair_playback_reports_total{outcome="invalid"}') == \
        before.pop('onair_playback_reports_total{outcome="invalid"}') + 1
    assert after == before  # nothing counted, and no new series


async def test_bodies_past_the_telemetry_cap_are_refused_before_parsing(
        app_client: httpx.AsyncClient, ctx: AppContext) -> None:
    cap = ctx.settings.telemetry_max_body_bytes
    padded = b'{"page":"watch","events":[{"kind":"start"}]}' + b" " * cap
    body = problem(await app_client.post(URL, content=padded), 413, "payload-too-large")
    assert body["limit"] == cap

    async def chunks() -> Any:  # no Content-Length: counted as it streams in
        for _ in range(cap // 1000 + 2):
            yield b" " * 1000

    problem(await app_client.post(URL, content=chunks()), 413, "payload-too-large")
    # past the app-wide cap the middleware answers before the route runs
    problem(await app_client.post(URL, content=b" " * (ctx.settings.max_body_bytes + 1)), 413,
            "payload-too-large")
    m = await scrape(app_client)
    assert m['onair_playback_reports_total{outcome="too_large"}'] == 2
    assert m['onair_playback_reports_total{outcome="accepted"}'] == 0


async def test_a_flooding_client_is_limited_and_others_are_not(
        app_client: httpx.AsyncClient, ctx: AppContext, make_user: UserFactory) -> None:
    burst = ctx.settings.telemetry_rate_burst
    one = {"page": "watch", "events": [{"kind": "start"}]}
    for _ in range(burst):
        assert (await app_client.post(URL, json=one)).status_code == 202
    refused = await app_client.post(URL, json=one)
    problem(refused, 429, "telemetry-rate-limited")
    assert int(refused.headers["retry-after"]) >= 1
    # an X-Forwarded-For written by the client is not believed (no trusted proxies)
    spoofed = await app_client.post(URL, json=one, headers={"x-forwarded-for": "203.0.113.9"})
    problem(spoofed, 429, "telemetry-rate-limited")
    # a refused batch is not read at all: even a malformed one gets the 429
    problem(await app_client.post(URL, content=b"garbage"), 429, "telemetry-rate-limited")
    # a signed-in user has a bucket of their own, whatever the IP does
    _, headers = make_user("buyer")
    for _ in range(burst):
        assert (await app_client.post(URL, json=one, headers=headers)).status_code == 202
    problem(await app_client.post(URL, json=one, headers=headers), 429, "telemetry-rate-limited")
    m = await scrape(app_client)
    assert m['onair_playback_reports_total{outcome="rate_limited"}'] == 4
    assert m['onair_playback_sessions_total{page="watch"}'] == 2 * burst


async def test_auth_model_anyone_may_report_but_a_bad_token_is_refused(
        app_client: httpx.AsyncClient, ctx: AppContext, make_user: UserFactory) -> None:
    one = {"page": "studio", "events": [{"kind": "layer", "layer": "audio"}]}
    assert (await app_client.post(URL, json=one)).status_code == 202  # anonymous (a beacon)
    anon_key = {"apikey": ctx.anon_key}
    assert (await app_client.post(URL, json=one, headers=anon_key)).status_code == 202
    _, seller = make_user("seller")
    assert (await app_client.post(URL, json=one, headers=seller)).status_code == 202
    problem(await app_client.post(URL, json=one, headers={"authorization": "Bearer forged"}), 401,
            "invalid-token")
    problem(await app_client.post(URL, json=one, headers={"authorization": "Basic abc"}), 401,
            "invalid-token")
    m = await scrape(app_client)
    assert m['onair_playback_layer_choices_total{layer="audio",page="studio"}'] == 3


@pytest.fixture
async def budget_client(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    tight = settings.model_copy(update={"telemetry_max_reports_per_second": 3.0})
    async with running_context(tight, clock) as context, asgi_client(context, "http://t") as c:
        yield c


async def test_past_the_process_budget_batches_are_dropped_not_parsed(
        budget_client: httpx.AsyncClient, make_user: UserFactory) -> None:
    """Many clients at once (each within its own limit) cost at most the budget of parsing:
    the rest is answered 202 with ``dropped`` and counted as overloaded."""
    answers = []
    for i in range(10):
        _, headers = make_user("buyer", f"many-{i}")
        response = await budget_client.post(URL, json=GOOD, headers=headers)
        assert response.status_code == 202
        answers.append(response.json())
    assert answers[:3] == [{"accepted": 8}] * 3
    assert {"accepted": 0, "dropped": "overloaded"} in answers[3:]
    m = await scrape(budget_client)
    accepted = m['onair_playback_reports_total{outcome="accepted"}']
    assert accepted + m['onair_playback_reports_total{outcome="overloaded"}'] == 10
    assert m['onair_playback_sessions_total{page="watch"}'] == accepted


async def test_label_sets_are_fixed_whatever_clients_send(app_client: httpx.AsyncClient) -> None:
    """No per-user or per-anything label: the series after a mixed load are the series at start."""
    start = set(await scrape(app_client))
    for raw in [*(b for b, _ in BAD_BODIES), orjson.dumps(GOOD)]:
        await app_client.post(URL, content=raw, headers={"x-forwarded-for": "198.51.100.7"})
    assert set(await scrape(app_client)) == start
    assert not any(re.search(r"user|stream|ip=", name) for name in start)


async def test_with_workers_each_process_takes_its_share_of_the_server_budget(
        settings: Settings, clock: FakeClock, make_user: UserFactory) -> None:
    """The telemetry limits are the server's: with ``--workers 3`` one process admits a third of
    the global budget (6/s → 2) and a third of a client's burst (9 → 3)."""
    three = settings.model_copy(update={"telemetry_max_reports_per_second": 6.0, "workers": 3,
                                        "telemetry_rate_burst": 9})
    async with running_context(three, clock) as context, asgi_client(context, "http://t") as client:
        answers = []
        for i in range(5):
            _, headers = make_user("buyer", f"share-{i}")
            answers.append((await client.post(URL, json=GOOD, headers=headers)).json())
        assert answers[:2] == [{"accepted": 8}] * 2
        assert answers[2:] == [{"accepted": 0, "dropped": "overloaded"}] * 3
        _, headers = make_user("buyer", "one-client")
        statuses = [(await client.post(URL, json={"page": "watch", "events": []}, headers=headers)).status_code
                    for _ in range(4)]
        assert statuses == [202, 202, 202, 429], statuses
