"""A scrape during a database outage still answers: readiness and errors are what it is for."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from onair.app import build_context, create_app
from onair.settings import Settings
from tests.integration.test_outage import unreachable


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
async def test_metrics_answer_while_the_database_is_down(kind: str, tmp_path: Path,
                                                         free_port: int) -> None:
    settings = Settings(_env_file=None, jwt_secret="outage-secret-" + "x" * 32, db_timeout=2,
                        **unreachable(kind, tmp_path, free_port))
    ctx = build_context(settings)
    app = create_app(settings, ctx=ctx, run_reaper=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            for _ in range(3):
                failed = await client.get(f"/api/v1/streams/{uuid.uuid4()}")
                assert failed.status_code == 503
            response = await client.get("/metrics")
    finally:
        await ctx.db.close()
    assert response.status_code == 200, response.text
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in text_string_to_metric_families(response.text) for s in family.samples}
    assert values[("onair_ready", (("check", "database"),))] == 0
    assert values[("onair_ready", (("check", "broker"),))] == 1
    assert values[("onair_db_errors_total", (("kind", "connection"),))] >= 3
