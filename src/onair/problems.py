"""Every REST problem type onair answers with, in one catalogue (RFC 9457 problem details).

A :class:`ProblemType` is a stable ``type`` slug with its HTTP status and default title; calling
it makes the :class:`Problem` to raise (``raise STREAM_NOT_FOUND(detail, stream_id=...)``).
Nothing else in ``src/`` constructs a :class:`Problem`, so a new slug has to be added here — and
``tests/unit/test_problems.py`` then fails until the README's "Errors" table documents it.
The handlers that turn problems into responses live in :mod:`onair.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Problem(Exception):
    """A client-visible error: HTTP status, stable type slug, human title, optional details."""

    def __init__(
        self,
        status: int,
        type_: str,
        title: str,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {type_}: {detail or title}")
        self.status = status
        self.type = type_
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            body["detail"] = self.detail
        body.update(self.extra)
        return body


@dataclass(frozen=True)
class ProblemType:
    """One kind of client-visible error. ``status`` is None only for ``http-error``, whose status
    is whatever the framework raised."""

    slug: str
    status: int | None
    title: str

    def __call__(
        self,
        detail: str | None = None,
        *,
        title: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> Problem:
        code = status if status is not None else self.status
        if code is None:
            raise TypeError(f"{self.slug} needs an explicit status")
        return Problem(code, self.slug, title or self.title, detail, headers, **extra)

    def matches(self, problem: Problem) -> bool:
        return problem.type == self.slug


CATALOGUE: dict[str, ProblemType] = {}


def _type(slug: str, status: int | None, title: str) -> ProblemType:
    assert slug not in CATALOGUE, slug
    CATALOGUE[slug] = kind = ProblemType(slug, status, title)
    return kind


def by_slug(slug: str) -> ProblemType:
    """The catalogued type for a slug computed elsewhere (a chat refusal, a body rule's reason);
    KeyError for anything not catalogued (the unit tests enumerate those sources)."""
    return CATALOGUE[slug]


# --- any route: HTTP-level errors, authentication, dependencies --------------------------------

BAD_REQUEST = _type("bad-request", 400, "Bad request")
UNAUTHORIZED = _type("unauthorized", 401, "Authentication required")
INVALID_TOKEN = _type("invalid-token", 401, "Invalid credentials")
FORBIDDEN = _type("forbidden", 403, "Not allowed")
NOT_FOUND = _type("not-found", 404, "Not found")
METHOD_NOT_ALLOWED = _type("method-not-allowed", 405, "Method not allowed")
CONFLICT = _type("conflict", 409, "Conflict")
PAYLOAD_TOO_LARGE = _type("payload-too-large", 413, "Request body too large")
UNSUPPORTED_MEDIA_TYPE = _type("unsupported-media-type", 415, "Unsupported media type")
VALIDATION_ERROR = _type("validation-error", 422, "Request is not valid")
RATE_LIMITED = _type("rate-limited", 429, "Too many requests")
HTTP_ERROR = _type("http-error", None, "HTTP error")
INTERNAL_ERROR = _type("internal-error", 500, "Internal server error")
SERVICE_UNAVAILABLE = _type("service-unavailable", 503, "Temporarily unavailable")
NOT_READY = _type("not-ready", 503, "Service not ready")
DEV_AUTH_DISABLED = _type("dev-auth-disabled", 404, "Dev sign-in is off")

# What Starlette's HTTPException statuses become; any other status is HTTP_ERROR.
BY_HTTP_STATUS: dict[int, ProblemType] = {
    kind.status: kind
    for kind in (BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, METHOD_NOT_ALLOWED, CONFLICT,
                 PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, VALIDATION_ERROR, RATE_LIMITED)
    if kind.status is not None
}

# --- streams ------------------------------------------------------------------------------------

STREAM_NOT_FOUND = _type("stream-not-found", 404, "Stream not found")
NOT_STREAM_OWNER = _type("not-stream-owner", 403, "Not allowed")
NOT_A_SELLER = _type("not-a-seller", 403, "Not allowed")
INVALID_CURSOR = _type("invalid-cursor", 400, "Invalid cursor")
ILLEGAL_TRANSITION = _type("illegal-transition", 409, "Illegal stream transition")
CONCURRENT_UPDATE = _type("concurrent-update", 409, "Stream changed concurrently")
STREAM_ENDED = _type("stream-ended", 409, "Stream has ended")

# --- Agora tokens and co-hosts ------------------------------------------------------------------

RATE_LIMIT_UNAVAILABLE = _type("rate-limit-unavailable", 503, "Token issuing is briefly unavailable")
AGORA_NOT_CONFIGURED = _type("agora-not-configured", 503, "Agora is not configured")
NOT_A_PUBLISHER = _type("not-a-publisher", 403, "Not allowed")
ALREADY_HOST = _type("already-host", 409, "Already the host")
TOO_MANY_COHOSTS = _type("too-many-cohosts", 409, "Too many co-hosts")
COHOST_NOT_FOUND = _type("cohost-not-found", 404, "Not a co-host")

# --- chat ---------------------------------------------------------------------------------------

MESSAGE_NOT_FOUND = _type("message-not-found", 404, "No such chat message")
STREAM_NOT_LIVE = _type("stream-not-live", 409, "Chat is closed")
CLIENT_MSG_ID_REUSED = _type("client-msg-id-reused", 409,
                             "client_msg_id was used for another message")
EDIT_SUPERSEDED = _type("edit-superseded", 409, "A later edit already stands")
CANNOT_SANCTION_SELLER = _type("cannot-sanction-seller", 409,
                               "The seller cannot be muted or banned")
CHAT_MUTED = _type("chat-muted", 403, "You are muted in this chat")
CHAT_BANNED = _type("chat-banned", 403, "You are banned from this chat")
SLOW_MODE = _type("slow-mode", 429, "Slow mode is on")
CONFLICTING_CURSORS = _type("conflicting-cursors", 422, "Use before_seq or after_seq, not both")
INVALID_LIMIT = _type("invalid-limit", 422, "limit is out of range")
MUTE_NEEDS_DURATION = _type("mute-needs-duration", 422, "A mute needs duration_seconds")
INVALID_DURATION = _type("invalid-duration", 422, "duration_seconds is out of range")
INVALID_SLOW_MODE = _type("invalid-slow-mode", 422, "slow_mode_seconds is out of range")
CHAT_UNAVAILABLE = _type("chat-unavailable", 503, "The message could not be stored")
CHAT_OVERLOADED = _type("chat-overloaded", 503, "Too many messages are waiting to be stored")
CHAT_TIMEOUT = _type("chat-timeout", 503, "The message was not confirmed in time")
# Chat refusals: the values of onair.domain.chat.Refusal.
NOT_MESSAGE_SENDER = _type("not-message-sender", 403, "Only the sender can edit a message")
EDIT_WINDOW_CLOSED = _type("edit-window-closed", 403, "The edit window has closed")
MESSAGE_DELETED = _type("message-deleted", 409, "The message was deleted")
NOT_CHAT_MODERATOR = _type("not-chat-moderator", 403, "Only the seller or a moderator can do this")
# A refused message body: "body-" + the reason of onair.domain.text.TextRejected.
BODY_EMPTY = _type("body-empty", 422, "Message body is not acceptable")
BODY_TOO_LONG = _type("body-too-long", 422, "Message body is not acceptable")
BODY_INVALID_UNICODE = _type("body-invalid-unicode", 422, "Message body is not acceptable")
BODY_FORBIDDEN_CHARACTER = _type("body-forbidden-character", 422, "Message body is not acceptable")
BODY_NOT_TEXT = _type("body-not-text", 422, "Message body is not acceptable")

# --- playback telemetry -------------------------------------------------------------------------

TELEMETRY_RATE_LIMITED = _type("telemetry-rate-limited", 429, "Too many telemetry reports")

# --- live shopping: the showcase (slugs of onair.domain.showcase.ShowcaseError too) ------------

NOT_SHOWCASE_EDITOR = _type("not-showcase-editor", 403, "Not allowed")
INVALID_PRODUCT = _type("invalid-product", 422, "Product is not valid")
PRODUCT_NOT_FOUND = _type("product-not-found", 404, "Not found")
SHOWCASE_FULL = _type("showcase-full", 409, "Conflict")
NOTHING_PINNED = _type("nothing-pinned", 409, "Conflict")
NO_DEAL = _type("no-deal", 409, "Conflict")

# --- live shopping: reactions -------------------------------------------------------------------

REACTIONS_NOT_ALLOWED = _type("reactions-not-allowed", 403, "Not allowed")
UNKNOWN_REACTION_KIND = _type("unknown-reaction-kind", 422, "Unknown reaction")
