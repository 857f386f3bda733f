"""Reaction storms, counted not fanned out (issue 14): sans-I/O aggregation of viewers' taps.

A tap is one viewer pressing one of a small fixed set of reactions. Sending every tap to every
viewer would cost (taps × viewers) deliveries; instead each process counts the taps it accepted
per stream and, once per window (a clock tick fed in by the caller), closes the window into one
:class:`Partial` per stream (counts per kind, stamped with the process's node id and a sequence
number). Every process combines the partials it gets — its own and, over the broker, the other
processes' — in a :class:`Combiner`, which hands out at most one aggregate per stream per tick.

Why nothing is counted twice or lost: a tap goes into exactly one window of the process that
accepted it (:class:`TapWindow`), a window becomes exactly one partial, and a combiner applies a
partial at most once (per node and stream it remembers the last sequence number applied: partials
of one node and stream travel one broker topic in order, so anything not newer is a redelivery).
Every partial a combiner applied leaves in exactly one aggregate, the next one it emits for that
stream. Reactions are ephemeral: nothing here is persisted, a process that stops loses only its
open window.

No I/O, no clock: the caller passes ``now`` (monotonic seconds) where time matters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

KINDS: tuple[str, ...] = ("heart", "fire", "laugh", "wow", "clap")
_KIND_SET = frozenset(KINDS)
MAX_KIND_CHARS = 16


def normalise_kind(value: object) -> str | None:
    """The reaction ``value`` names, in any ASCII letter casing (``"Heart"`` → ``"heart"``), or
    None: anything else (other names, non-ASCII look-alikes, non-strings) is refused, never
    guessed."""
    if not isinstance(value, str) or len(value) > MAX_KIND_CHARS or not value.isascii():
        return None
    kind = value.lower()
    return kind if kind in _KIND_SET else None


@dataclass(frozen=True, slots=True)
class Partial:
    """One process's closed window for one stream."""

    stream: str
    node: str
    seq: int
    counts: Mapping[str, int]

    def to_event(self) -> dict[str, object]:
        return {"kind": "reactions_partial", "node": self.node, "seq": self.seq, "counts": dict(self.counts)}

    @classmethod
    def from_event(cls, stream: str, event: Mapping[str, object]) -> Partial | None:
        """The partial a broker event carries, or None when it is malformed (never raises)."""
        return cls.checked(stream, event.get("node"), event.get("seq"), event.get("counts"))

    @classmethod
    def checked(cls, stream: str, node: object, seq: object, counts: object) -> Partial | None:
        """A partial from untrusted fields (another process's), or None when any is malformed."""
        if not isinstance(node, str) or type(seq) is not int or not isinstance(counts, dict):
            return None
        clean: dict[str, int] = {}
        for kind, n in counts.items():
            if kind not in _KIND_SET or type(n) is not int or n < 0:
                return None
            if n:
                clean[kind] = n
        return cls(stream, node, seq, clean) if clean else None


@dataclass(frozen=True, slots=True)
class Aggregate:
    """What viewers of ``stream`` receive: counts per kind since the previous aggregate."""

    stream: str
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class TapLimiter:
    """Per-user token buckets of taps: ``rate`` taps/s refill up to ``burst``. Excess taps are
    refused (the caller drops them silently). At most ``max_users`` buckets are kept; the least
    recently used goes first (it only gets a fresh burst back), so the map stays bounded whatever
    the number of users."""

    __slots__ = ("_buckets", "burst", "max_users", "rate")

    def __init__(self, rate: float, burst: float, max_users: int = 100_000) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_users = max_users
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # user -> (tokens, at)

    def take(self, user: str, now: float) -> bool:
        tokens, at = self._buckets.pop(user, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[user] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_users:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)


class TapWindow:
    """The taps one process accepted in the current window, per stream. At most ``max_streams``
    streams are counted per window (a tap for one more stream is refused), so the map is bounded."""

    def __init__(self, node: str, max_streams: int = 10_000) -> None:
        self.node = node
        self.max_streams = max_streams
        self._seq = 0
        self._open: dict[str, dict[str, int]] = {}

    def tap(self, stream: str, kind: str, n: int = 1) -> bool:
        counts = self._open.get(stream)
        if counts is None:
            if len(self._open) >= self.max_streams:
                return False
            counts = self._open[stream] = {}
        counts[kind] = counts.get(kind, 0) + n
        return True

    def close(self) -> list[Partial]:
        """Close the window: one partial per stream that had taps, each with a new sequence
        number (increasing per node, so per node and stream too)."""
        closed, self._open = self._open, {}
        out = []
        for stream, counts in closed.items():
            self._seq += 1
            out.append(Partial(stream, self.node, self._seq, counts))
        return out

    def __len__(self) -> int:
        return len(self._open)


@dataclass(slots=True)
class Combiner:
    """Sums partials (own and other nodes') per stream until the next :meth:`emit`.

    ``max_streams`` bounds both the pending sums and the remembered sequence numbers (the latter
    in LRU order: a node and stream not heard of for that long is forgotten, and its next partial
    is accepted as new — partials are never redelivered that late)."""

    max_streams: int = 10_000
    pending: dict[str, dict[str, int]] = field(default_factory=dict)
    last_seq: OrderedDict[tuple[str, str], int] = field(default_factory=OrderedDict)
    duplicates: int = 0  # partials refused as already applied
    overflow: int = 0  # partials refused because max_streams streams were pending

    def add(self, partial: Partial) -> bool:
        key = (partial.node, partial.stream)
        last = self.last_seq.get(key)
        if last is not None and partial.seq <= last:
            self.duplicates += 1
            return False
        sums = self.pending.get(partial.stream)
        if sums is None:
            if len(self.pending) >= self.max_streams:
                self.overflow += 1
                return False
            sums = self.pending[partial.stream] = {}
        for kind, n in partial.counts.items():
            sums[kind] = sums.get(kind, 0) + n
        self.last_seq[key] = partial.seq
        self.last_seq.move_to_end(key)
        while len(self.last_seq) > 4 * self.max_streams:
            self.last_seq.popitem(last=False)
        return True

    def emit(self) -> list[Aggregate]:
        """One aggregate per stream with pending counts; the sums start again from zero."""
        pending, self.pending = self.pending, {}
        return [Aggregate(stream, {k: sums[k] for k in KINDS if sums.get(k)})
                for stream, sums in pending.items() if any(sums.values())]


def total(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Counts summed per kind (for tests, the bench and reactions-per-minute)."""
    out: dict[str, int] = {}
    for c in counts:
        for kind, n in c.items():
            out[kind] = out.get(kind, 0) + n
    return out
