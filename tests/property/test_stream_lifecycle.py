"""Stateful tests of the stream lifecycle against a reference model.

Property 5: stream state management consistency — for any sequence of start/pause/resume/end by
any actor, the stored state equals the table model, illegal or unauthorized moves change nothing,
the version counts the successful moves and the transition history is a legal path.

Property 14: stream session lifecycle management — with heartbeats, viewers and a fake clock, the
reaper pauses a live stream whose host went silent for `host_grace`, ends a stream paused for
`pause_timeout`, drops viewers silent for `viewer_timeout`, a returning host resumes an auto-paused
stream, viewer counts stay exact, and an ended stream has no viewers left.

Both run the real StreamService on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from onair.app import build_context, start_context, stop_context
from onair.domain.clock import FakeClock
from onair.domain.identity import Principal, Role
from onair.domain.streams import TRANSITIONS, Action, Status
from onair.errors import Problem
from onair.settings import Settings
from onair.store.streams import get_stream, transitions_of

HOST_GRACE, PAUSE_TIMEOUT, VIEWER_TIMEOUT = 30.0, 600.0, 45.0
VIEWERS = [f"viewer-{i}" for i in range(4)]


@dataclass
class Model:
    status: Status = Status.SCHEDULED
    version: int = 1
    pause_reason: str | None = None
    paused_at: datetime | None = None
    host_seen: datetime | None = None
    present: dict[str, datetime] = field(default_factory=dict)
    peak: int = 0

    def move(self, action: Action, now: datetime, reason: str | None = None) -> None:
        self.status = TRANSITIONS[self.status][action]
        self.version += 1
        if action is Action.START:
            self.host_seen = now
        elif action is Action.PAUSE:
            self.paused_at, self.pause_reason = now, reason or "seller"
        elif action is Action.RESUME:
            self.paused_at, self.pause_reason, self.host_seen = None, None, now
        elif action is Action.END:
            self.paused_at = None
            self.present.clear()


class LifecycleMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    settings: Settings

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.ctx = build_context(self.settings, clock=self.clock)
        self.run(start_context(self.ctx, reaper=False))
        self.seller = Principal("seller-1", Role.SELLER)
        self.actors = {
            "seller": self.seller,
            "buyer": Principal("buyer-1", Role.BUYER),
            "other_seller": Principal("seller-2", Role.SELLER),
            "moderator": Principal("mod-1", Role.MODERATOR),
        }
        self.model = Model()
        self.stream_id = ""

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(stop_context(self.ctx))

    @initialize()
    def create(self) -> None:
        self.stream_id = self.run(self.ctx.streams.create(self.seller, "drop")).id

    def expect_problem(self, coro: Any, status: int) -> None:
        with pytest.raises(Problem) as caught:
            self.run(coro)
        assert caught.value.status == status, caught.value.body()

    @rule(actor=st.sampled_from(["seller", "buyer", "other_seller", "moderator"]),
          action=st.sampled_from(list(Action)))
    def act(self, actor: str, action: Action) -> None:
        principal = self.actors[actor]
        call = self.ctx.streams.act(principal, self.stream_id, action)
        if actor in ("buyer", "other_seller"):
            self.expect_problem(call, 403)
        elif action not in TRANSITIONS[self.model.status]:
            self.expect_problem(call, 409)
        else:
            self.run(call)
            self.model.move(action, self.clock.now())

    @rule(data=st.data())
    def seller_moves_on(self, data: st.DataObject) -> None:
        """A legal non-final move, so runs reach the live/paused states the reaper acts on."""
        legal = [a for a in TRANSITIONS[self.model.status] if a is not Action.END]
        if legal:
            self.act("seller", data.draw(st.sampled_from(legal)))

    @rule()
    def host_heartbeat(self) -> None:
        now = self.clock.now()
        self.run(self.ctx.streams.heartbeat(self.seller, self.stream_id))
        if self.model.status is Status.PAUSED and self.model.pause_reason == "host_disconnected":
            self.model.move(Action.RESUME, now)
        if self.model.status in (Status.LIVE, Status.PAUSED):
            self.model.host_seen = now

    @rule(viewer=st.sampled_from(VIEWERS), how=st.sampled_from(["join", "heartbeat"]))
    def viewer_arrives(self, viewer: str, how: str) -> None:
        principal = Principal(viewer, Role.BUYER)
        call = (self.ctx.streams.join(principal, self.stream_id) if how == "join"
                else self.ctx.streams.heartbeat(principal, self.stream_id))
        if self.model.status is Status.ENDED:
            self.expect_problem(call, 409)
            return
        self.run(call)
        self.model.present[viewer] = self.clock.now()
        self.model.peak = max(self.model.peak, len(self.model.present))

    @rule(viewer=st.sampled_from(VIEWERS))
    def viewer_leaves(self, viewer: str) -> None:
        self.run(self.ctx.streams.leave(Principal(viewer, Role.BUYER), self.stream_id))
        self.model.present.pop(viewer, None)

    @rule(seconds=st.sampled_from([1.0, 10.0, HOST_GRACE, VIEWER_TIMEOUT, PAUSE_TIMEOUT]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reap(self) -> None:
        now = self.clock.now()
        m = self.model
        self.run(self.ctx.streams.reap())
        if m.status is Status.LIVE and m.host_seen and now - m.host_seen >= timedelta(seconds=HOST_GRACE):
            m.move(Action.PAUSE, now, "host_disconnected")
        elif m.status is Status.PAUSED and m.paused_at and now - m.paused_at >= timedelta(seconds=PAUSE_TIMEOUT):
            m.move(Action.END, now, "pause_timeout")
        cutoff = now - timedelta(seconds=VIEWER_TIMEOUT)
        for viewer in [v for v, seen in m.present.items() if seen <= cutoff]:
            del m.present[viewer]

    @invariant()
    def stored_state_matches_model(self) -> None:
        if not self.stream_id:
            return

        async def read() -> tuple[Any, list[Any]]:
            async with self.ctx.db.read() as conn:
                return await get_stream(conn, self.stream_id), await transitions_of(conn, self.stream_id)

        stream, history = self.run(read())
        m = self.model
        assert stream.status is m.status
        assert stream.version == m.version
        assert stream.viewer_count == len(m.present)
        assert stream.peak_viewers == m.peak
        if m.status is Status.ENDED:
            assert stream.viewer_count == 0 and stream.ended_at is not None
        previous = Status.SCHEDULED
        for expected_version, step in enumerate(history, start=2):
            assert step.version == expected_version
            assert step.from_status == previous
            assert Status(step.to_status) in TRANSITIONS[previous].values()
            previous = Status(step.to_status)
        assert previous is m.status


def test_stream_lifecycle_properties(settings: Settings) -> None:
    """Property 5 and Property 14, on every database backend."""
    settings = settings.model_copy(update={
        "host_grace": HOST_GRACE, "pause_timeout": PAUSE_TIMEOUT, "viewer_timeout": VIEWER_TIMEOUT})
    loop = asyncio.new_event_loop()
    try:
        machine = type("Machine", (LifecycleMachine,), {"loop": loop, "settings": settings})
        run_state_machine_as_test(machine, settings=hsettings(
            max_examples=40, stateful_step_count=30, deadline=None,
            suppress_health_check=[HealthCheck.too_slow]))
    finally:
        loop.close()
