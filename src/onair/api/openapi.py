"""Error answers in the OpenAPI document, as they are sent: problem+json with a documented status.

Routes declare the refusals particular to them with ``responses=problems(404, 409, …)``;
:func:`install_openapi` adds what every route of a kind can answer and gives every error status
the one ``Problem`` schema under ``application/problem+json`` (FastAPI alone documents a 422
``HTTPValidationError`` as ``application/json``, which is not what a client receives).
``tests/security/test_schemathesis.py`` holds every answer to this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from onair.errors import PROBLEM_JSON

DESCRIPTIONS = {
    400: "Bad request: a body that is not UTF-8 JSON, or an invalid cursor",
    401: "No valid user token: missing, invalid or expired, or the anon key where a user is needed",
    403: "Signed in but not allowed (not the stream's seller, muted or banned, not staff)",
    404: "No such stream, message, co-host, or the feature is off",
    409: "Conflicts with the current state (stream not live, id reused with other content)",
    413: "Request body larger than the configured limit",
    422: "A field, parameter or path segment is not valid (named in `errors[].loc`)",
    429: "Rate limited; retry after the `Retry-After` seconds",
    503: "A dependency (database, broker, token credentials) is unavailable; retry shortly",
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


class ProblemDoc(BaseModel):
    """RFC 9457 problem details; ``type`` is a stable slug, extra members depend on it."""

    model_config = ConfigDict(extra="allow", title="Problem")
    type: str = Field(description="Stable slug, e.g. validation-error, stream-not-found.")
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        None, description="For validation-error: each refused field's `loc` and `msg`.")


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's particular refusals (the schema is filled in later)."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


def install_openapi(app: FastAPI, api_prefix: str) -> None:
    build = app.openapi  # FastAPI's own, with every setting of the app

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_problems(build(), api_prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_problems(document: dict[str, Any], api_prefix: str) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = ProblemDoc.model_json_schema()
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            ours = path.startswith(api_prefix)
            if ours:
                for status in _common_statuses(operation):
                    responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status[0] not in "45":
                    continue
                if ours or "HTTPValidationError" in str(response.get("content")):
                    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
                    if status == "422":
                        response["description"] = DESCRIPTIONS[422]
    if "HTTPValidationError" not in str(document.get("paths")):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def _common_statuses(operation: dict[str, Any]) -> list[int]:
    """What any API route can answer: 503 (the database or broker is down), 422 for anything
    with input, 400 (unparseable) and 413 (too large) for anything with a body."""
    statuses = [503]
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.append(422)
    if operation.get("requestBody"):
        statuses += [400, 413]
    return statuses
