from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onair.realtime.protocol.channel import TRANSITIONS, ChannelTable, Event, State
from onair.realtime.protocol.errors import LocalProtocolError


def _put(table: ChannelTable, state: State) -> None:
    path = {State.CLOSED: [], State.JOINING: [Event.JOIN], State.JOINED: [Event.JOIN, Event.JOIN_OK],
            State.ERRORED: [Event.JOIN, Event.CRASH]}[state]
    for event in path:
        table.handle("realtime:t", event)


@given(st.sampled_from(State), st.sampled_from(Event))
def test_every_state_event_pair_follows_the_table(state: State, event: Event) -> None:
    table = ChannelTable()
    _put(table, state)
    assert table.state("realtime:t") is state
    target = TRANSITIONS[state].get(event)
    if target is None:
        with pytest.raises(LocalProtocolError) as info:
            table.handle("realtime:t", event)
        assert event.value in str(info.value) and state.value in str(info.value) and "realtime:t" in str(info.value)
        assert table.state("realtime:t") is state
    else:
        table.handle("realtime:t", event)
        assert table.state("realtime:t") is target
        assert ("realtime:t" in table.topics()) is (target is not State.CLOSED)


def test_counts_only_live_channels() -> None:
    table = ChannelTable()
    for i in range(3):
        table.handle(f"realtime:{i}", Event.JOIN)
    table.handle("realtime:0", Event.JOIN_OK)
    table.handle("realtime:1", Event.JOIN_ERROR)
    assert len(table) == 2 and [c.topic for c in table.joined()] == ["realtime:0"]
