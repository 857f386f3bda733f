"""The stream state machine, as a table.

    scheduled ──start──▶ live ──pause──▶ paused
                          ▲                │
                          └────resume──────┘
    scheduled | live | paused ──end──▶ ended   (ended is final)

Rules: only the stream's seller or staff (moderator, admin, service) may move a stream; the
system (the reaper) may pause a live stream whose host vanished and end a stream paused too long.
An illegal move raises :class:`IllegalTransition`, naming the current state and the legal moves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from onair.domain.identity import Principal


class Status(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    PAUSED = "paused"
    ENDED = "ended"


class Action(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    END = "end"


TRANSITIONS: dict[Status, dict[Action, Status]] = {
    Status.SCHEDULED: {Action.START: Status.LIVE, Action.END: Status.ENDED},
    Status.LIVE: {Action.PAUSE: Status.PAUSED, Action.END: Status.ENDED},
    Status.PAUSED: {Action.RESUME: Status.LIVE, Action.END: Status.ENDED},
    Status.ENDED: {},
}

# Reasons the system records when it moves a stream on its own.
HOST_DISCONNECTED = "host_disconnected"
PAUSE_TIMEOUT = "pause_timeout"


class StreamError(Exception):
    """Base of the domain's stream errors."""


class IllegalTransition(StreamError):
    def __init__(self, current: Status, action: Action) -> None:
        self.current = current
        self.action = action
        self.allowed = allowed_actions(current)
        moves = ", ".join(self.allowed) or "none (the stream has ended)"
        super().__init__(f"cannot {action} a stream that is {current}; allowed: {moves}")


class NotStreamOwner(StreamError):
    def __init__(self) -> None:
        super().__init__("only the stream's seller, a moderator or an admin may do this")


def allowed_actions(status: Status) -> list[str]:
    return [action.value for action in TRANSITIONS[status]]


@dataclass(frozen=True)
class Stream:
    id: str
    seller_id: str
    title: str
    status: Status
    version: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    paused_at: datetime | None = None
    ended_at: datetime | None = None
    pause_reason: str | None = None
    end_reason: str | None = None
    last_host_heartbeat_at: datetime | None = None
    viewer_count: int = 0
    peak_viewers: int = 0


def may_control(principal: Principal, stream: Stream) -> bool:
    return principal.is_staff or (
        principal.is_signed_in and principal.user_id == stream.seller_id
    )


def transition(stream: Stream, action: Action, now: datetime, reason: str | None = None) -> Stream:
    """The stream after ``action`` at ``now``; raises IllegalTransition. Pure."""

    target = TRANSITIONS[stream.status].get(action)
    if target is None:
        raise IllegalTransition(stream.status, action)
    changes: dict[str, object] = {"status": target, "version": stream.version + 1,
                                  "updated_at": now}
    if action is Action.START:
        changes.update(started_at=now, last_host_heartbeat_at=now)
    elif action is Action.PAUSE:
        changes.update(paused_at=now, pause_reason=reason or "seller")
    elif action is Action.RESUME:
        # Resuming counts as a sign of life from the host.
        changes.update(paused_at=None, pause_reason=None, last_host_heartbeat_at=now)
    elif action is Action.END:
        changes.update(ended_at=now, end_reason=reason or "ended_by_seller", paused_at=None,
                       viewer_count=0)
    return replace(stream, **changes)  # type: ignore[arg-type]


def reaper_action(
    stream: Stream, now: datetime, host_grace: float, pause_timeout: float
) -> tuple[Action, str] | None:
    """What the reaper must do to ``stream`` at ``now``, if anything."""

    if stream.status is Status.LIVE and stream.last_host_heartbeat_at is not None:
        if (now - stream.last_host_heartbeat_at).total_seconds() >= host_grace:
            return Action.PAUSE, HOST_DISCONNECTED
    if stream.status is Status.PAUSED and stream.paused_at is not None:
        if (now - stream.paused_at).total_seconds() >= pause_timeout:
            return Action.END, PAUSE_TIMEOUT
    return None


def host_heartbeat_action(stream: Stream) -> Action | None:
    """A host heartbeat on a stream auto-paused for a lost host resumes it."""

    if stream.status is Status.PAUSED and stream.pause_reason == HOST_DISCONNECTED:
        return Action.RESUME
    return None
