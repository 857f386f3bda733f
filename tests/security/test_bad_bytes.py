"""Bad bytes in every string a client sends (issue 10, finding 10), on SQLite and PostgreSQL.

NUL, other control characters, bidi overrides, unpaired surrogates and invisible-only text in
each body field, query parameter and path segment get a 422 problem naming the field (or a 404
for a path that cannot name anything), never a 500, and change nothing in the database. Static
files answer odd paths with a 404. A last test checks, by introspection, that every string a
route accepts goes through the one validator, so a new field cannot forget it.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import func, select

from onair.api.fields import TEXT_VALIDATORS
from onair.app import create_app
from onair.context import AppContext
from onair.settings import Settings
from onair.store import tables

API = "/api/v1"
PROBLEM = "application/problem+json"

# (label, JSON text of the string): raw JSON so an unpaired surrogate can be sent as "\ud800".
BAD = [
    ("nul", '"a\\u0000b"'),
    ("escape", '"\\u001b[31mred"'),
    ("c1", '"a\\u0085b"'),
    ("rlo", '"sale \\u202egnp.exe"'),
    ("isolate", '"a\\u2066b"'),
    ("surrogate", '"a\\ud800b"'),
    ("hidden-tag-text", '"hi\\udb40\\udc41"'),
]
INVISIBLE = [("zwsp", '"\\u200b\\u200b"'), ("blank", '"\\u2800 \\u3164"'), ("bom", '"\\ufeff"')]
BAD_IDS = [*BAD, ("space", '"a b"'), ("zero-width", '"a\\u200bb"')]
PATH_BAD = ["a%00b", "%1b", "a%C2%85b", "%E2%80%AEx", "a%E2%80%8Bb", "%E2%81%A6"]


def body(**fields: str) -> bytes:
    """A JSON object whose values are given as JSON text."""
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


async def snapshot(ctx: AppContext) -> dict[str, Any]:
    """Every row that a refused request must leave as it was."""
    state: dict[str, Any] = {}
    async with ctx.db.read() as conn:
        for table in (tables.stream_sessions, tables.stream_cohosts, tables.chat_messages,
                      tables.chat_sanctions, tables.stream_transitions):
            rows = (await conn.execute(select(table))).mappings().all()
            state[table.name] = sorted(repr(sorted(dict(r).items())) for r in rows)
        count = (await conn.execute(select(func.count()).select_from(tables.stream_sessions)))
        state["streams"] = count.scalar_one()
    return state


@pytest.fixture
async def world(app_client: httpx.AsyncClient, make_user: Any) -> dict[str, Any]:
    seller_id, seller = make_user("seller")
    buyer_id, buyer = make_user("buyer")
    _, admin = make_user("admin")
    created = await app_client.post(f"{API}/streams", json={"title": "Drop"}, headers=seller)
    sid = created.json()["id"]
    assert (await app_client.post(f"{API}/streams/{sid}/start", headers=seller)).is_success
    sent = await app_client.post(f"{API}/streams/{sid}/chat", headers=buyer,
                                 json={"body": "hello", "client_msg_id": "m1"})
    assert sent.status_code == 201, sent.text
    return {"sid": sid, "seller": seller, "buyer": buyer, "admin": admin, "buyer_id": buyer_id,
            "seller_id": seller_id, "mid": sent.json()["id"]}


def assert_refused(response: httpx.Response, field: str, type_: str = "validation-error") -> None:
    assert response.status_code == 422, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["type"] == type_, problem
    if type_ == "validation-error":
        assert problem["errors"][0]["loc"][-1] == field, problem


# (name, method, path template, JSON body template with {v}, role, field, values)
BODY_CASES = [
    ("title", "POST", "/streams", {"title": "{v}"}, "seller", "title", BAD + INVISIBLE),
    ("end reason", "POST", "/streams/{sid}/end", {"reason": "{v}"}, "seller", "reason",
     BAD + INVISIBLE),
    ("sanction user", "POST", "/streams/{sid}/chat/sanctions", {"user_id": "{v}", "kind": '"ban"'},
     "seller", "user_id", BAD_IDS + INVISIBLE),
    ("sanction reason", "POST", "/streams/{sid}/chat/sanctions",
     {"user_id": '"someone"', "kind": '"ban"', "reason": "{v}"}, "seller", "reason",
     BAD + INVISIBLE),
    ("co-host", "POST", "/streams/{sid}/cohosts", {"user_id": "{v}"}, "seller", "user_id",
     BAD_IDS + INVISIBLE),
    ("verify token", "POST", "/tokens/verify", {"token": "{v}"}, "admin", "token", BAD_IDS),
    ("verify channel", "POST", "/tokens/verify", {"token": '"007abc"', "channel": "{v}"},
     "admin", "channel", BAD_IDS),
]


@pytest.mark.parametrize("case", BODY_CASES, ids=[c[0] for c in BODY_CASES])
async def test_bad_strings_in_bodies_are_refused(
    app_client: httpx.AsyncClient, ctx: AppContext, world: dict[str, Any], case: Any,
) -> None:
    _, method, path, template, role, field, values = case
    before = await snapshot(ctx)
    for label, value in values:
        content = body(**{k: value if v == "{v}" else v for k, v in template.items()})
        response = await app_client.request(
            method, API + path.format(**world), content=content,
            headers={**world[role], "content-type": "application/json"})
        assert_refused(response, field), label
    assert await snapshot(ctx) == before


@pytest.mark.parametrize("hot", [True, False], ids=["hot-route", "fastapi"])
async def test_bad_chat_bodies_are_refused(
    ctx: AppContext, world: dict[str, Any], hot: bool,
) -> None:
    """The chat send (a hot route) and edit: the chat rule's body-* problem types."""
    app = create_app(ctx.settings, ctx=ctx, run_reaper=False, hot_routes=hot)
    before = await snapshot(ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        headers = {**world["buyer"], "content-type": "application/json"}
        for label, value in BAD + INVISIBLE:
            expected = ("body-empty" if (label, value) in INVISIBLE else
                        "body-invalid-unicode" if label == "surrogate" else
                        "body-forbidden-character")
            sent = await client.post(f"{API}/streams/{world['sid']}/chat", headers=headers,
                                     content=body(body=value, client_msg_id=f'"{label}"'))
            # The send's JSON parser (pydantic's) refuses a lone surrogate as invalid JSON.
            assert_refused(sent, "body", "validation-error" if label == "surrogate" else expected)
            edited = await client.patch(f"{API}/streams/{world['sid']}/chat/{world['mid']}",
                                        headers=headers, content=body(body=value))
            assert_refused(edited, "body", expected)
    assert await snapshot(ctx) == before


QUERY_CASES = [("seller_id", "/streams?seller_id={v}"), ("cursor", "/streams?cursor={v}")]


@pytest.mark.parametrize(("field", "path"), QUERY_CASES)
async def test_bad_query_parameters_are_refused(
    app_client: httpx.AsyncClient, world: dict[str, Any], field: str, path: str,
) -> None:
    for value in PATH_BAD:
        response = await app_client.get(API + path.format(v=value), headers=world["buyer"])
        assert_refused(response, field)


PATH_CASES = [
    ("GET", "/streams/{v}", "stream_id"),
    ("POST", "/streams/{v}/start", "stream_id"),
    ("POST", "/streams/{v}/chat", "stream_id"),  # hot route
    ("POST", "/streams/{v}/rtc-token", "stream_id"),  # hot route
    ("GET", "/streams/{v}/chat", "stream_id"),
    ("GET", "/streams/{sid}/chat/{v}", "message_id"),
    ("DELETE", "/streams/{sid}/chat/{v}", "message_id"),
    ("DELETE", "/streams/{sid}/chat/sanctions/{v}", "user_id"),
    ("DELETE", "/streams/{sid}/cohosts/{v}", "user_id"),
]


@pytest.mark.parametrize(("method", "path", "field"), PATH_CASES,
                         ids=[f"{m} {p}" for m, p, _ in PATH_CASES])
async def test_bad_path_segments_are_refused(
    app_client: httpx.AsyncClient, ctx: AppContext, world: dict[str, Any], method: str,
    path: str, field: str,
) -> None:
    before = await snapshot(ctx)
    for value in PATH_BAD:
        url = API + path.format(v=value, sid=world["sid"])
        kwargs: dict[str, Any] = {"headers": world["seller"]}
        if method == "POST" and path.endswith("/chat"):
            kwargs["json"] = {"body": "hi", "client_msg_id": "p1"}
        response = await app_client.request(method, url, **kwargs)
        assert_refused(response, field)
    assert await snapshot(ctx) == before


@pytest.mark.parametrize("path", [
    "/static/x%00.js", "/static/%00", "/static/a%00/b.css", "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2fapp.py", "/static/%ff.js", "/static/%ED%A0%80", "/static/" + "a" * 5000,
    "/static/" + "a/" * 3000 + "x.js", "/static/%c0%ae%c0%ae/x",
])
async def test_odd_static_paths_are_not_found(app_client: httpx.AsyncClient, path: str) -> None:
    response = await app_client.get(path)
    assert response.status_code == 404, (response.status_code, response.text[:200])
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_clean_text_is_stored_normalised(
    app_client: httpx.AsyncClient, world: dict[str, Any],
) -> None:
    """What is accepted is stored in its one normal form (NFC, one line, trimmed)."""
    created = await app_client.post(f"{API}/streams", headers=world["seller"],
                                     json={"title": "  Cafe\u0301\n\tsale \u2764\ufe0f "})
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "Caf\u00e9 sale \u2764\ufe0f"
    listed = await app_client.get(f"{API}/streams", params={"seller_id": world["seller_id"]},
                                  headers=world["buyer"])
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2


def _string_checked(annotation: Any, metadata: list[Any]) -> bool:
    """True when every str a value of this type can hold passes a text validator or a pattern."""
    checks = [getattr(m, "func", None) for m in metadata]
    if any(c in TEXT_VALIDATORS for c in checks) or any(
            getattr(m, "pattern", None) for m in metadata):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return _string_checked(inner, [*metadata, *extra])
    if annotation is str:
        return False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return all(_field_checked(annotation, name) for name in annotation.model_fields)
    return all(_string_checked(arg, metadata) for arg in typing.get_args(annotation)
               if arg is not type(None) and typing.get_origin(arg) is not typing.Literal)


# Chat bodies go through onair.domain.chat.normalize_body: the same text rule, with chat's
# established body-* problem types instead of validation-error.
CHECKED_ELSEWHERE = {("SendIn", "body"), ("EditIn", "body")}


def _field_checked(model: type[BaseModel], name: str) -> bool:
    if (model.__name__, name) in CHECKED_ELSEWHERE:
        return True
    info = model.model_fields[name]
    return _string_checked(info.annotation, list(info.metadata))


def test_every_string_input_is_validated(tmp_path: Path) -> None:
    app = create_app(Settings(_env_file=None, data_dir=tmp_path, jwt_secret="x" * 40),
                     run_reaper=False)
    unchecked = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.path.startswith("/realtime"):
            continue  # realtime's REST broadcast speaks Supabase's errors; nothing is stored
        dependant = route.dependant
        params = [*dependant.path_params, *dependant.query_params, *dependant.header_params,
                  *dependant.body_params]
        for sub in dependant.dependencies:
            params += [*sub.path_params, *sub.query_params, *sub.body_params]
        for param in params:
            info = param.field_info
            if not _string_checked(info.annotation, list(info.metadata)):
                unchecked.append(f"{route.path} {param.name}")
        openapi = route.openapi_extra or {}
        schema = openapi.get("requestBody", {}).get("content", {}).get("application/json", {})
        title = schema.get("schema", {}).get("title")
        for model in (m for m in BaseModel.__subclasses__() if m.__name__ == title):
            unchecked += [f"{route.path} {model.__name__}.{n}" for n in model.model_fields
                          if not _field_checked(model, n)]
    assert not unchecked, unchecked
