"""ChatOrder: chat rows published by several processes reach subscribers in seq order.

Property 6 (chat delivery and ordering), across processes: whatever the interleaving of the
processes' publications (each process publishes its own rows in seq order), every row is
delivered exactly once, inserts in seq order, each update after its insert; nothing is left
held. When a row never arrives, the rows behind it go out, in order, once ``wait`` has passed.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from onair.realtime.ordering import ChatOrder

WAIT = 0.5


@st.composite
def publications(draw: st.DrawFn) -> list[tuple[int, bool, str]]:
    """(seq, is_insert, label) in the order one node receives them from several processes."""
    count = draw(st.integers(1, 40))
    processes = draw(st.integers(1, 4))
    owner = [draw(st.integers(0, processes - 1)) for _ in range(count)]
    edits = draw(st.lists(st.integers(1, count), max_size=10))
    streams: list[list[tuple[int, bool, str]]] = [[] for _ in range(processes)]
    for seq in range(1, count + 1):
        streams[owner[seq - 1]].append((seq, True, f"insert {seq}"))
        for n, edited in enumerate(edits):
            if edited == seq:  # an edit is committed (and published) by the insert's process
                streams[owner[seq - 1]].append((seq, False, f"edit {seq}.{n}"))
    merged: list[tuple[int, bool, str]] = []
    while any(streams):
        pick = draw(st.sampled_from([i for i, s in enumerate(streams) if s]))
        merged.append(streams[pick].pop(0))
    return merged


def check_order(out: list[str], sent: list[tuple[int, bool, str]]) -> None:
    assert sorted(out) == sorted(label for _, _, label in sent)  # each exactly once
    inserts = [int(label.split()[1]) for label in out if label.startswith("insert")]
    assert inserts == sorted(inserts)
    position = {label: i for i, label in enumerate(out)}
    for label in out:
        if label.startswith("edit"):
            seq = label.split()[1].split(".")[0]
            assert position[f"insert {seq}"] < position[label]


@settings(max_examples=300, deadline=None)
@given(publications())
def test_interleaved_processes_are_delivered_in_seq_order(
    sent: list[tuple[int, bool, str]],
) -> None:
    """Property 6 (chat delivery and ordering) across processes."""
    order: ChatOrder[str] = ChatOrder(WAIT)
    out: list[str] = []
    # The node's first row: what a fresh subscriber sees first starts the sequence. Start it at
    # seq 1 as a node does that was listening before the stream's first message.
    order.push("s", 0, True, "start", 0.0)
    for seq, is_insert, label in sent:
        out += order.push("s", seq, is_insert, label, now=0.1)
    assert order.holding() == 0 and order.next_deadline() is None
    check_order(out, sent)


@settings(max_examples=200, deadline=None)
@given(publications(), st.data())
def test_a_lost_row_delays_the_rest_by_at_most_the_wait(
    sent: list[tuple[int, bool, str]], data: st.DataObject,
) -> None:
    """At-most-once brokers lose rows; then what follows goes out once the wait is over."""
    lost_seq = data.draw(st.integers(1, max(seq for seq, _, _ in sent)))
    order: ChatOrder[str] = ChatOrder(WAIT)
    order.push("s", 0, True, "start", 0.0)
    out: list[str] = []
    for seq, is_insert, label in sent:
        if seq != lost_seq:
            out += order.push("s", seq, is_insert, label, now=1.0)
    deadline = order.next_deadline()
    assert deadline is None or deadline <= 1.0 + WAIT
    assert order.expire(now=0.9 + WAIT) == []  # not before the wait
    out += order.expire(now=1.0 + WAIT)
    assert order.holding() == 0
    check_order(out, [p for p in sent if p[0] != lost_seq])
    # A row that turns up after its gap was given up still goes out, at once.
    assert order.push("s", lost_seq, True, "late", now=2.0) == ["late"]


def test_streams_are_independent_and_forgotten() -> None:
    order: ChatOrder[str] = ChatOrder(WAIT)
    assert order.push("a", 5, True, "a5", 0.0) == ["a5"]
    assert order.push("b", 1, True, "b1", 0.0) == ["b1"]
    assert order.push("a", 7, True, "a7", 0.0) == []
    assert order.push("b", 2, True, "b2", 0.0) == ["b2"]  # a's gap holds only a
    assert order.push("a", 6, False, "a6 edit before its insert", 0.0) == []
    assert order.push("a", 6, True, "a6", 0.1) == ["a6", "a6 edit before its insert", "a7"]
    assert order.push("a", 3, False, "edit of an old message", 0.2) == ["edit of an old message"]
    order.forget("a")
    assert order.push("a", 42, True, "a42", 0.3) == ["a42"]  # a fresh start, nothing held
    assert order.push("c", 9, False, "an edit first", 0.3) == ["an edit first"]  # no sequence yet
