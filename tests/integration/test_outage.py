"""When the database does not answer, requests get 503 + Retry-After (retry), not a 500 (bug).

Real unreachable databases, no mocks: PostgreSQL on a port nothing listens on, and SQLite in a
database path under a file. The app is built but its database never answers.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from onair.app import build_context, create_app
from onair.auth.jwt import mint_token
from onair.domain.identity import Role
from onair.settings import Settings


def unreachable(kind: str, tmp_path: Path, port: int) -> dict[str, Any]:
    if kind == "postgresql":
        return {"database_url": f"postgresql://postgres@127.0.0.1:{port}/test",
                "data_dir": tmp_path}
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    return {"database_url": f"sqlite:///{blocker}/onair.db", "data_dir": tmp_path}


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
async def test_an_unreachable_database_is_a_503(kind: str, tmp_path: Path,
                                                free_port: int) -> None:
    settings = Settings(_env_file=None, jwt_secret="outage-secret-" + "x" * 32,
                        agora_app_id="970CA35de60c44645bbae8a215061b33",
                        agora_app_certificate="5CFd2fd1755d40ecb72977518be15d3b",
                        **unreachable(kind, tmp_path, free_port))
    ctx = build_context(settings)
    app = create_app(settings, ctx=ctx, run_reaper=False)
    token = mint_token(ctx.jwt_secret, "sam", Role.SELLER, 600, audience=settings.jwt_audience,
                       app_role_claim=settings.jwt_app_role_claim)
    headers = {"authorization": f"Bearer {token}", "x-request-id": "outage-1"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            with capture_logs() as logs:
                answers = [
                    await client.get(f"/api/v1/streams/{uuid.uuid4()}", headers=headers),
                    await client.post("/api/v1/streams", json={"title": "x"}, headers=headers),
                    await client.post(f"/api/v1/streams/{uuid.uuid4()}/rtc-token",
                                      headers=headers),
                ]
        for response in answers:
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "1"
            assert response.headers["x-request-id"] == "outage-1"
            assert response.json()["type"] == "service-unavailable"
        assert [e["event"] for e in logs if e["log_level"] in ("warning", "error")] == [
            "dependency_unavailable"] * 3
    finally:
        await ctx.db.close()
        # aiosqlite answers from a worker thread; a connect attempt still in flight must land
        # while this test's loop is alive, not in a later test as "Event loop is closed"
        await asyncio.sleep(0.3)
