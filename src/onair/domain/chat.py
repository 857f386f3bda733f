"""Chat rules as pure decisions: message bodies, edits and deletes, who may send and when.

Nothing here does I/O or reads the clock. The chat service passes ``now`` in (a ``datetime`` for
wall-clock rules, a float of monotonic seconds for the rate limiter) and turns each refusal into a
REST problem. Ordering is never decided here: the store assigns ``seq``; timestamps only resolve
competing edits of one message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from onair.domain.text import TextKind, TextRejected, clean_text

# --- message bodies ---------------------------------------------------------------------------


class BodyRejected(ValueError):
    """A body that cannot be stored; ``reason`` is a stable slug for the API."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def normalize_body(raw: str, max_chars: int) -> str:
    """Return the plain text to store for ``raw``, or raise :class:`BodyRejected`.

    The shared rule for multi-line display text (:mod:`onair.domain.text`): Unicode NFC, line
    breaks unified to ``\\n``, tabs kept, surrounding whitespace trimmed; control characters
    other than tab and line breaks, bidi overrides and unpaired surrogates are refused, and so is
    a body with nothing visible (only whitespace or zero-width characters); then
    1..``max_chars`` code points. Text is never interpreted: ``<b>`` stays the four characters
    ``<b>``, the viewer escapes on render. The result is a fixed point (normalizing it again
    changes nothing). Refusals are ``body-`` + the text rule's reason (``body-empty``,
    ``body-too-long``, ``body-invalid-unicode``, ``body-forbidden-character``, ``body-not-text``).
    """
    try:
        return clean_text(raw, TextKind.MULTILINE, max_chars=max_chars)
    except TextRejected as rejected:
        raise BodyRejected(f"body-{rejected.reason}", f"body {rejected.detail}") from None


# --- competing edits and deletes -----------------------------------------------------------------


@dataclass(frozen=True)
class MessageState:
    """The mutable part of a stored message. A deleted message is a tombstone: empty body."""

    body: str
    edited_at: datetime | None = None
    edited_by: str | None = None
    deleted_at: datetime | None = None
    deleted_by: str | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class Edit:
    body: str
    at: datetime  # server timestamp taken when the edit request arrived
    by: str


@dataclass(frozen=True)
class Delete:
    at: datetime
    by: str


class MergeOutcome(Enum):
    APPLIED = "applied"  # the change is now the message's state
    SUPERSEDED = "superseded"  # an edit with a later (timestamp, editor id) already stands
    DELETED = "deleted"  # an edit that lost to a delete
    ALREADY_DELETED = "already-deleted"  # a delete that came after an earlier delete


def merge(state: MessageState, change: Edit | Delete) -> tuple[MessageState, MergeOutcome]:
    """Fold one edit or delete into ``state``; the result does not depend on arrival order.

    The rule ("conflict resolution using timestamps"): a delete wins over every edit, whenever
    either happened; among edits the later server timestamp wins and equal timestamps go to the
    greater editor id (then the greater body, so identical keys still resolve); among deletes the
    first (earliest timestamp, then smaller deleter id) is kept. Folding any set of changes in any
    order gives the same state, so two servers or two racing requests always agree.
    """
    if isinstance(change, Delete):
        if state.deleted and _delete_key(state) <= (change.at, change.by):
            return state, MergeOutcome.ALREADY_DELETED
        return MessageState(body="", deleted_at=change.at, deleted_by=change.by), MergeOutcome.APPLIED
    if state.deleted:
        return state, MergeOutcome.DELETED
    if state.edited_at is not None and _edit_key(state) >= (change.at, change.by, change.body):
        return state, MergeOutcome.SUPERSEDED
    return replace(state, body=change.body, edited_at=change.at, edited_by=change.by), MergeOutcome.APPLIED


def _edit_key(state: MessageState) -> tuple[datetime, str, str]:
    assert state.edited_at is not None and state.edited_by is not None
    return (state.edited_at, state.edited_by, state.body)


def _delete_key(state: MessageState) -> tuple[datetime, str]:
    assert state.deleted_at is not None and state.deleted_by is not None
    return (state.deleted_at, state.deleted_by)


# --- permissions -----------------------------------------------------------------------------


class Refusal(Enum):
    """Why a chat action is refused; values are the API's stable problem types."""

    NOT_SENDER = "not-message-sender"
    EDIT_WINDOW_CLOSED = "edit-window-closed"
    MESSAGE_DELETED = "message-deleted"
    NOT_MODERATOR = "not-chat-moderator"


def edit_refusal(
    *,
    editor_id: str,
    sender_id: str,
    created_at: datetime,
    deleted: bool,
    now: datetime,
    window: timedelta,
) -> Refusal | None:
    """Only the sender edits, only within ``window`` of the message's server time, never a tombstone."""
    if editor_id != sender_id:
        return Refusal.NOT_SENDER
    if deleted:
        return Refusal.MESSAGE_DELETED
    if now - created_at > window:
        return Refusal.EDIT_WINDOW_CLOSED
    return None


def is_moderator(*, actor_id: str | None, actor_is_staff: bool, seller_id: str) -> bool:
    """The stream's seller and staff (moderator, admin, service) moderate its chat."""
    return actor_is_staff or (actor_id is not None and actor_id == seller_id)


def delete_refusal(
    *, actor_id: str, actor_is_staff: bool, sender_id: str, seller_id: str
) -> Refusal | None:
    """Moderators delete any message; a sender may take back their own."""
    if actor_id == sender_id or is_moderator(
        actor_id=actor_id, actor_is_staff=actor_is_staff, seller_id=seller_id
    ):
        return None
    return Refusal.NOT_MODERATOR


# --- mutes, bans, slow mode ------------------------------------------------------------------

SanctionKind = Literal["mute", "ban"]


@dataclass(frozen=True)
class Sanction:
    kind: SanctionKind
    until: datetime | None  # None: until lifted
    reason: str | None = None


@dataclass(frozen=True)
class SendBlock:
    """Why a user may not send right now (403 with ``kind``, ``reason`` and ``until``)."""

    kind: SanctionKind
    until: datetime | None
    reason: str | None


def active_block(sanctions: Iterable[Sanction], now: datetime) -> SendBlock | None:
    """The sanction that blocks sending at ``now``: a ban beats a mute, the longest one wins."""
    active = [s for s in sanctions if s.until is None or s.until > now]
    if not active:
        return None

    def strength(s: Sanction) -> tuple[int, int, datetime]:
        return (s.kind == "ban", s.until is None, s.until or now)

    winner = max(active, key=strength)
    return SendBlock(kind=winner.kind, until=winner.until, reason=winner.reason)


def slow_mode_wait(last_sent_at: datetime | None, now: datetime, slow_mode_seconds: int) -> float:
    """Seconds the user still has to wait in slow mode (0 when they may send now)."""
    if slow_mode_seconds <= 0 or last_sent_at is None:
        return 0.0
    remaining = (last_sent_at + timedelta(seconds=slow_mode_seconds) - now).total_seconds()
    return max(0.0, remaining)


def retry_after_header(seconds: float) -> str:
    """HTTP Retry-After is whole seconds; round up so a client that obeys it is never early."""
    return str(max(1, math.ceil(seconds)))


# --- send rate ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenBucket:
    """A token bucket of ``burst`` tokens refilled at ``rate`` per second, as GCRA.

    GCRA keeps one float per user (the "theoretical arrival time" of the next token) instead of
    a count and a timestamp; it admits exactly what a token bucket admits. The ``limits``
    library has fixed and sliding windows but no token bucket, hence these few lines.
    ``now`` is monotonic seconds. Once ``now >= tat`` the bucket is full again and the user's
    state can be forgotten.
    """

    rate: float
    burst: int

    def take(self, tat: float | None, now: float) -> tuple[bool, float | None, float]:
        """Try to spend one token. Returns ``(allowed, new_tat, retry_after_seconds)``.

        On refusal ``new_tat`` is ``tat`` unchanged (a refused request costs nothing) and
        ``retry_after_seconds`` is when one token will be there.
        """
        interval = 1.0 / self.rate
        base = now if tat is None or tat < now else tat
        new_tat = base + interval
        allow_at = new_tat - self.burst * interval
        if allow_at - now > _EPSILON:
            return False, tat, allow_at - now
        return True, new_tat, 0.0


_EPSILON = 1e-9
