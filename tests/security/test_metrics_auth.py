"""Issue 10 finding 11: /metrics can require a bearer token (ONAIR_METRICS_TOKEN)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from onair.app import create_app
from onair.domain.clock import FakeClock
from onair.settings import Settings
from tests.apps import running_context

TOKEN = "scrape-" + "t" * 30


async def get_metrics(tmp_path: Path, token: str | None, **headers: str) -> httpx.Response:
    settings = Settings(_env_file=None, data_dir=tmp_path, metrics_token=token, reaper_interval=3600)
    async with running_context(settings, FakeClock()) as ctx:
        app = create_app(settings, ctx=ctx, run_reaper=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://onair.test") as http:
            return await http.get("/metrics", headers=headers)


@pytest.mark.parametrize("headers", [
    {}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"},
    {"authorization": f"Bearer {TOKEN}x"}, {"authorization": "Bearer"}, {"apikey": TOKEN},
])
async def test_metrics_with_a_token_refuse_everyone_else(tmp_path: Path, headers: dict[str, str]) -> None:
    response = await get_metrics(tmp_path, TOKEN, **headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"].endswith("unauthorized")
    assert "onair_" not in response.text


async def test_metrics_with_the_token(tmp_path: Path) -> None:
    response = await get_metrics(tmp_path, TOKEN, authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200 and "onair_http_requests_total" in response.text


async def test_metrics_without_a_configured_token_stay_open(tmp_path: Path) -> None:
    response = await get_metrics(tmp_path, None)
    assert response.status_code == 200 and "onair_streams" in response.text
