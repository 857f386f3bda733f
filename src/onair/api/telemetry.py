"""REST for the pages' playback telemetry: ``POST /api/v1/telemetry``.

Who may report: anyone. The watch page's last batch goes out with ``navigator.sendBeacon`` on
pagehide, which cannot carry an ``Authorization`` header, and a report only adds to counters with
fixed labels. A token, when one is sent, must be valid (401 otherwise, as everywhere) and then the
rate limit is the user's; without one it is the client IP's (IPv6: its /64; behind the proxies of
``ONAIR_REALTIME_TRUSTED_PROXIES``, the forwarded client). The order of the checks is the order
of their cost: the rate limit before the body is read, the byte cap before it is parsed.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from onair.api import deps
from onair.api.openapi import problems
from onair.context import AppContext
from onair.domain import playback
from onair.domain.playback import ReportRejected
from onair.errors import Problem, field_problem
from onair.problems import PAYLOAD_TOO_LARGE, TELEMETRY_RATE_LIMITED
from onair.realtime.client_ip import client_ip, trusted_networks
from onair.services.telemetry import TelemetryService

router = APIRouter(tags=["telemetry"])


class TelemetryEvent(BaseModel):
    """One observation. ``seconds`` goes with first_frame, stall and rtt; ``problem`` with
    video_problem, ``link`` with reconnect, ``reason`` with media_failure, ``layer`` with layer;
    any other field is refused."""

    kind: Literal["start", "first_frame", "video_problem", "stall", "reconnect",
                  "media_failure", "layer", "rtt"]
    seconds: float | None = Field(None, ge=0, le=playback.MAX_SECONDS)
    problem: Literal["black", "frozen"] | None = None
    link: Literal["realtime", "media"] | None = None
    reason: Literal["permission-denied", "device-not-found", "autoplay-blocked", "viewer-limit",
                    "peer-lost", "token-expired", "sdk-load-failed", "network",
                    "other"] | None = None
    layer: Literal["high", "low", "audio"] | None = None


class TelemetryBatch(BaseModel):
    page: Literal["watch", "studio"]
    events: list[TelemetryEvent] = Field(min_length=1, description="At most "
                                         "ONAIR_TELEMETRY_MAX_EVENTS (64 by default).")


class TelemetryAccepted(BaseModel):
    accepted: int = Field(description="Events counted (0 when the batch was dropped).")
    dropped: Literal["overloaded"] | None = Field(
        None, description="Set when this server was over its budget of batches per second: "
        "the batch was not counted; do not resend it.")


_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": TelemetryBatch.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


@router.post("/telemetry", status_code=202, response_model=TelemetryAccepted,
             openapi_extra=_BODY_DOC, responses=problems(401, 413, 422, 429),
             summary="Report playback telemetry (batched; sendBeacon-friendly)")
async def report(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    telemetry = ctx.telemetry
    principal = await deps.principal_from_headers(ctx, request.headers)
    key = f"user:{principal.user_id}" if principal.is_signed_in else f"ip:{_ip(ctx, request)}"
    retry_after = await telemetry.admit(key)
    if retry_after is not None:
        seconds = max(1, int(retry_after + 0.999))
        raise TELEMETRY_RATE_LIMITED(f"retry in {seconds} s; batch events instead of sending each",
                                     headers={"Retry-After": str(seconds)})
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > telemetry.max_body_bytes:
        raise _too_large(telemetry)
    body = bytearray()
    async for chunk in request.stream():  # already capped by the app-wide ONAIR_MAX_BODY_BYTES
        body += chunk
        if len(body) > telemetry.max_body_bytes:
            raise _too_large(telemetry)
    try:
        accepted = telemetry.record(bytes(body))
    except ReportRejected as err:
        raise field_problem(err.loc, err.msg) from None
    out = TelemetryAccepted(accepted=0, dropped="overloaded") if accepted is None else \
        TelemetryAccepted(accepted=len(accepted.events))
    return Response(out.model_dump_json(exclude_none=True), status_code=202,
                    media_type="application/json")


def _too_large(telemetry: TelemetryService) -> Problem:
    telemetry.refuse("too_large")
    return PAYLOAD_TOO_LARGE(f"a telemetry batch is at most {telemetry.max_body_bytes} bytes",
                             limit=telemetry.max_body_bytes)


def _ip(ctx: AppContext, request: Request) -> str:
    networks = ctx.extras.get(_NETWORKS)
    if networks is None:
        networks = ctx.extras[_NETWORKS] = trusted_networks(ctx.settings.realtime_trusted_proxies)
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), networks) or "unknown"


_NETWORKS = "onair.telemetry.trusted_proxies"
