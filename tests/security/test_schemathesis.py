"""Schemathesis over the OpenAPI document, on SQLite and PostgreSQL (issue 10, "Fuzzing").

Every operation of ``/openapi.json`` gets generated requests, sent in-process through the real
app (lifespan started, database migrated) as a seller, a buyer or the anon key, with path ids
that are sometimes real (a live stream, a message, a co-host) so the fuzzer gets past the 404s.
Every response must be no 5xx and conform to the document: a documented status, the documented
content type (problem+json for errors), a body matching its schema.

Bounded and deterministic for CI: ``derandomize=True`` (the examples are a function of the
schema), no example database, ``FUZZ_EXAMPLES`` per operation and mode; about a minute for
both backends on this machine.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from onair.app import create_app
from onair.auth.jwt import mint_token
from onair.settings import Settings
from tests.conftest import POSTGRES_URL, _create_schema, need, postgres_available

FUZZ_EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
SECRET = "fuzz-secret-" + "x" * 40


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fuzz_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one backend; sync, because schemathesis runs the app on its own loop."""
    values: dict[str, Any] = {"data_dir": tmp_path / "data"}
    schema = None
    if request.param == "postgresql":
        need(postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
        schema = f"fuzz_{secrets.token_hex(6)}"
        asyncio.run(_create_schema(schema))
        values |= {"database_url": POSTGRES_URL, "database_schema": schema}
    try:
        yield Settings(_env_file=None, jwt_secret=SECRET, reaper_interval=3600,
                       agora_app_id="970CA35de60c44645bbae8a215061b33",
                       agora_app_certificate="5CFd2fd1755d40ecb72977518be15d3b",
                       agora_token_rate_limit="100000/minute", chat_rate_burst=100_000,
                       chat_rate_per_second=1000.0, **values)
    finally:
        if schema is not None:
            asyncio.run(_create_schema(schema, drop=True))


# Strings the generator reaches only by luck within a few examples: NUL, controls, bidi
# overrides, unpaired surrogates, invisible-only text, an over-long name (issue 10, finding 10).
BAD_STRINGS = ["a\x00b", "\x00", "\x1b[2J", "a\x85b", "\u202egnp.exe", "\u2066x", "\ud800",
               "\u200b\u2800", "\U000e0041", "\ufeff", "x" * 5000, "..%2f..", "%00"]


def poison(case: Any, data: st.DataObject) -> None:
    """Half the time, replace one string the case sends (path, query or body field) by a bad one."""
    slots = [(where, key) for where in (case.path_parameters, case.query, case.body)
             if isinstance(where, dict) for key, value in where.items() if isinstance(value, str)]
    if slots and data.draw(st.booleans(), label="poison"):
        where, key = data.draw(st.sampled_from(slots), label="slot")
        # A URL cannot carry an unpaired surrogate (the client cannot encode it); JSON can.
        bad = [b for b in BAD_STRINGS if where is case.body or b != "\ud800"]
        where[key] = data.draw(st.sampled_from(bad), label="bad string")


def bearer(user: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user, role, 3600)}"}


def test_openapi_fuzz(fuzz_settings: Settings) -> None:
    app = create_app(fuzz_settings, run_reaper=False)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures = fuzz(app, schema)
    finally:
        asgi.shutdown_lifespans()  # closes the database before the schema is dropped
    assert not failures, "\n\n".join(failures)


def test_openapi_documents_problems(tmp_path: Path) -> None:
    """Statically: every error an API route documents is problem+json, FastAPI's JSON 422 is
    gone, and the statuses every API route can give are there."""
    app = create_app(Settings(_env_file=None, data_dir=tmp_path, jwt_secret=SECRET),
                     run_reaper=False)
    document = app.openapi()
    assert "HTTPValidationError" not in str(document)
    assert "Problem" in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "503" in responses, (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, (method, path)
            for status, response in responses.items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (
                        method, path, status)


def fuzz(app: Any, schema: Any) -> list[str]:
    seller, buyer, cohost = bearer("fuzz-seller", "seller"), bearer("fuzz-buyer", "buyer"), \
        "fuzz-cohost"
    anon = {"apikey": app.state.ctx.anon_key}
    client = asgi.get_client(app)
    with client:
        stream = client.post("/api/v1/streams", json={"title": "Fuzz"}, headers=seller).json()
        sid = stream["id"]
        assert client.post(f"/api/v1/streams/{sid}/start", headers=seller).ok
        message = client.post(f"/api/v1/streams/{sid}/chat", headers=buyer,
                              json={"body": "hi", "client_msg_id": "fuzz-1"}).json()
        assert client.post(f"/api/v1/streams/{sid}/cohosts", json={"user_id": cohost},
                           headers=seller).ok
    real = {"stream_id": sid, "message_id": message["id"], "user_id": cohost}
    identities = st.sampled_from([seller, buyer, anon])

    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, database=None,
                      deadline=None, suppress_health_check=list(HealthCheck))
            @given(case=strategy, who=identities, use_real=st.booleans(), data=st.data())
            def run(case: Any, who: dict[str, str], use_real: bool, data: st.DataObject) -> None:
                if use_real and case.path_parameters:
                    for name in case.path_parameters:
                        if name in real:
                            case.path_parameters[name] = real[name]
                poison(case, data)
                case.call_and_validate(headers=who, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: no parameters
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - one run reports all
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures
