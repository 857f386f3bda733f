"""The pure stream rules: the table, ids, the reaper's decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from onair.domain.ids import Uuid7Generator, is_uuid
from onair.domain.streams import (
    TRANSITIONS,
    Action,
    IllegalTransition,
    Status,
    Stream,
    reaper_action,
    transition,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fresh() -> Stream:
    return Stream(id="s", seller_id="u", title="t", status=Status.SCHEDULED, version=1,
                  created_at=T0, updated_at=T0)


@given(st.lists(st.sampled_from(list(Action)), max_size=30))
def test_any_action_sequence_follows_the_table(actions: list[Action]) -> None:
    """Property 5: stream state management consistency (pure core): legal moves follow the
    table and bump the version; illegal ones raise and name the current state."""
    stream, now = fresh(), T0
    for action in actions:
        now += timedelta(seconds=1)
        expected = TRANSITIONS[stream.status].get(action)
        if expected is None:
            try:
                transition(stream, action, now)
            except IllegalTransition as err:
                assert err.current is stream.status
                assert str(stream.status) in str(err)
            else:
                raise AssertionError("illegal move accepted")
            continue
        after = transition(stream, action, now)
        assert after.status is expected and after.version == stream.version + 1
        if after.status is Status.ENDED:
            assert after.ended_at == now and after.viewer_count == 0
        stream = after
    assert stream.status is not Status.ENDED or TRANSITIONS[stream.status] == {}


def test_reaper_decisions_at_the_boundaries() -> None:
    live = transition(fresh(), Action.START, T0)
    assert reaper_action(live, T0 + timedelta(seconds=29.9), 30, 600) is None
    assert reaper_action(live, T0 + timedelta(seconds=30), 30, 600) == (Action.PAUSE, "host_disconnected")
    paused = transition(live, Action.PAUSE, T0)
    assert reaper_action(paused, T0 + timedelta(seconds=599), 30, 600) is None
    assert reaper_action(paused, T0 + timedelta(seconds=600), 30, 600) == (Action.END, "pause_timeout")
    assert reaper_action(fresh(), T0 + timedelta(days=9), 30, 600) is None


@given(st.lists(st.integers(min_value=-5, max_value=5), min_size=2, max_size=200))
def test_uuid7_strictly_increasing_even_when_the_clock_stalls(steps: list[int]) -> None:
    gen, now, ids = Uuid7Generator(), T0, []
    for step in steps:
        now += timedelta(milliseconds=step)
        ids.append(gen(now))
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(is_uuid(i) and i[14] == "7" for i in ids)


def test_is_uuid_rejects_junk() -> None:
    assert not is_uuid("nope") and not is_uuid("") and not is_uuid("'; drop table x; --")
