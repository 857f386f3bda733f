"""Chat rows of one stream in seq order, although several processes publish them.

Each onair process publishes the chat rows it committed in seq order, but with several processes
(``onair serve --workers``, several hosts) two of them committing on one stream publish
independently, so a node can receive seq 12 (from B) before seq 11 (from A). ``ChatOrder`` holds
a row that arrives ahead of a missing seq until the gap is filled, or until ``wait`` seconds
have passed: then the gap is given up (the broker delivers at most once; clients resync with
``after_seq``) and what was held goes out in seq order. Updates of a message wait behind its
insert. The first insert seen on a stream starts its sequence; rows behind the sequence (edits
of older messages, a row that arrives after its gap was given up) go out at once.

Sans-I/O: the caller passes times in and schedules ``expire`` at ``next_deadline``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Held(Generic[T]):
    insert: T | None = None
    updates: list[T] = field(default_factory=list)

    def release(self) -> list[T]:
        return [self.insert, *self.updates] if self.insert is not None else list(self.updates)


@dataclass
class _Stream(Generic[T]):
    next_seq: int
    held: dict[int, _Held[T]] = field(default_factory=dict)
    deadline: float | None = None


class ChatOrder(Generic[T]):
    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._streams: dict[str, _Stream[T]] = {}
        self.held = 0  # rows that had to wait for an earlier seq (counters for /metrics)
        self.gaps_given_up = 0

    def push(self, stream: str, seq: int, is_insert: bool, item: T, now: float) -> list[T]:
        """What may go out now, in order (possibly nothing, possibly earlier held rows)."""
        state = self._streams.get(stream)
        if state is None:
            if is_insert:
                self._streams[stream] = _Stream(seq + 1)
            return [item]
        if seq < state.next_seq:
            return [item]
        if seq > state.next_seq or not is_insert:
            self.held += 1
            held = state.held.setdefault(seq, _Held())
            if is_insert:
                held.insert = item
            else:
                held.updates.append(item)
            if state.deadline is None:
                state.deadline = now + self.wait
            return []
        out = [item, *state.held.pop(seq, _Held[T]()).updates]
        state.next_seq = seq + 1
        while (ready := state.held.get(state.next_seq)) is not None and ready.insert is not None:
            out += state.held.pop(state.next_seq).release()
            state.next_seq += 1
        state.deadline = now + self.wait if state.held else None
        return out

    def expire(self, now: float) -> list[T]:
        """Give up the gaps that waited ``wait``: what they held goes out in seq order."""
        out: list[T] = []
        for state in self._streams.values():
            if state.deadline is not None and state.deadline <= now:
                self.gaps_given_up += 1
                for seq in sorted(state.held):
                    out += state.held[seq].release()
                state.next_seq = max(state.next_seq, max(state.held) + 1)
                state.held.clear()
                state.deadline = None
        return out

    def reset(self) -> list[T]:
        """Give up every gap now (the link that would fill them broke): what was held goes out
        in seq order, and each stream's sequence starts afresh with the next insert seen, so
        the first row after the outage is not held for a gap that can never fill."""
        out: list[T] = []
        for state in self._streams.values():
            for seq in sorted(state.held):
                out += state.held[seq].release()
        self._streams.clear()
        return out

    def next_deadline(self) -> float | None:
        deadlines = [s.deadline for s in self._streams.values() if s.deadline is not None]
        return min(deadlines) if deadlines else None

    def forget(self, stream: str) -> None:
        """This node stopped receiving the stream: its sequence starts afresh next time."""
        self._streams.pop(stream, None)

    def holding(self) -> int:
        return sum(len(s.held) for s in self._streams.values())
