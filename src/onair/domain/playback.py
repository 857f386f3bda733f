"""Playback telemetry from the pages, as pure rules: what a report may say and how it is counted.

The watch and studio pages send batches of small events (``POST /api/v1/telemetry``). Anyone can
send one, so everything here is bounded before it is trusted: a batch has at most
``max_events`` events, every event kind, page, failure reason and quality layer comes from a
fixed set (they become Prometheus label values, and a label set a client could grow would be a
memory leak on the server and in Prometheus), every duration is a finite number in a fixed range.
A batch is refused whole when any event is wrong, so a client bug shows up as a 422 in its
console instead of half-counted numbers.

``PlaybackTally`` is the aggregate: plain ints and ``onair.tally.Tally`` histograms, copied into
the ``onair_playback_*`` families at scrape time like every other counter. It has no per-user or
per-stream keys: its size is fixed by the sets below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from onair.tally import Tally

PAGES = ("watch", "studio")
PROBLEMS = ("black", "frozen")  # what the sampled frames showed (client/frame_check.js)
LINKS = ("realtime", "media")  # which connection was re-established
LAYERS = ("high", "low", "audio")  # client/video_quality.js VIDEO_LAYERS
FAILURES = ("permission-denied", "device-not-found", "autoplay-blocked", "viewer-limit",
            "peer-lost", "token-expired", "sdk-load-failed", "network", "other")
OUTCOMES = ("accepted", "invalid", "too_large", "rate_limited", "overloaded")  # of a batch
KINDS = ("start", "first_frame", "video_problem", "stall", "reconnect", "media_failure", "layer",
         "rtt")

FIRST_FRAME_SECONDS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)
STALL_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
RTT_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MAX_SECONDS = 3600.0  # longest duration an event may carry (a stall of an hour is a gone viewer)


class ReportRejected(ValueError):
    """A batch that is not counted; ``loc`` names the offending field like FastAPI errors do."""

    def __init__(self, loc: tuple[str, ...], msg: str) -> None:
        super().__init__(f"{'.'.join(loc)}: {msg}")
        self.loc = loc
        self.msg = msg


@dataclass(frozen=True)
class Event:
    kind: str
    label: str | None = None  # problem, link, reason or layer, by kind
    seconds: float | None = None


@dataclass(frozen=True)
class Report:
    page: str
    events: tuple[Event, ...]


# kind -> (the field holding its label and that label's allowed values, whether it has seconds)
_SHAPES: dict[str, tuple[tuple[str, tuple[str, ...]] | None, bool]] = {
    "start": (None, False),
    "first_frame": (None, True),
    "video_problem": (("problem", PROBLEMS), False),
    "stall": (None, True),
    "reconnect": (("link", LINKS), False),
    "media_failure": (("reason", FAILURES), False),
    "layer": (("layer", LAYERS), False),
    "rtt": (None, True),
}


def parse_report(body: Any, *, max_events: int) -> Report:
    """The report in a decoded JSON body, or :class:`ReportRejected`. Work is bounded by
    ``max_events`` (checked before any event is looked at) and a few keys per event."""
    if not isinstance(body, dict):
        raise ReportRejected(("body",), "must be a JSON object")
    unknown = set(body) - {"page", "events"}
    if unknown:
        raise ReportRejected(("body", _first(unknown)), "unknown field")
    page = body.get("page")
    if page not in PAGES:
        raise ReportRejected(("body", "page"), f"must be one of {', '.join(PAGES)}")
    events = body.get("events")
    if not isinstance(events, list):
        raise ReportRejected(("body", "events"), "must be a list")
    if not 1 <= len(events) <= max_events:
        raise ReportRejected(("body", "events"), f"must hold 1..{max_events} events")
    return Report(page, tuple(_event(raw, i) for i, raw in enumerate(events)))


def _event(raw: Any, index: int) -> Event:
    loc = ("body", "events", str(index))
    if not isinstance(raw, dict):
        raise ReportRejected(loc, "must be an object")
    kind = raw.get("kind")
    shape = _SHAPES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        raise ReportRejected((*loc, "kind"), f"must be one of {', '.join(KINDS)}")
    assert isinstance(kind, str)
    labelled, timed = shape
    allowed = {"kind"} | ({labelled[0]} if labelled else set()) | ({"seconds"} if timed else set())
    unknown = set(raw) - allowed
    if unknown:
        raise ReportRejected((*loc, _first(unknown)), f"unknown field for {kind}")
    label = None
    if labelled is not None:
        name, values = labelled
        label = raw.get(name)
        if label not in values:
            raise ReportRejected((*loc, name), f"must be one of {', '.join(values)}")
    seconds = None
    if timed:
        seconds = raw.get("seconds")
        if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                or not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS):
            raise ReportRejected((*loc, "seconds"), f"must be a number in 0..{MAX_SECONDS:g}")
        seconds = float(seconds)
    return Event(kind, label, seconds)


def _first(keys: set[Any]) -> str:
    return str(sorted(str(k)[:40] for k in keys)[0])


def _zeros(*sets: tuple[str, ...]) -> dict[tuple[str, ...], int]:
    keys: list[tuple[str, ...]] = [()]
    for values in sets:
        keys = [(*key, value) for key in keys for value in values]
    return dict.fromkeys(keys, 0)


@dataclass
class PlaybackTally:
    """Everything counted from accepted reports, keyed only by the fixed sets above."""

    sessions: dict[tuple[str, ...], int] = field(default_factory=lambda: _zeros(PAGES))
    problems: dict[tuple[str, ...], int] = field(default_factory=lambda: _zeros(PAGES, PROBLEMS))
    reconnects: dict[tuple[str, ...], int] = field(default_factory=lambda: _zeros(PAGES, LINKS))
    failures: dict[tuple[str, ...], int] = field(default_factory=lambda: _zeros(PAGES, FAILURES))
    layers: dict[tuple[str, ...], int] = field(default_factory=lambda: _zeros(PAGES, LAYERS))
    first_frame: dict[str, Tally] = field(
        default_factory=lambda: {p: Tally(FIRST_FRAME_SECONDS) for p in PAGES})
    stalls: dict[str, Tally] = field(
        default_factory=lambda: {p: Tally(STALL_SECONDS) for p in PAGES})
    rtt: dict[str, Tally] = field(default_factory=lambda: {p: Tally(RTT_SECONDS) for p in PAGES})

    def add(self, report: Report) -> None:
        page = report.page
        for event in report.events:
            kind = event.kind
            if kind == "start":
                self.sessions[(page,)] += 1
            elif kind == "first_frame":
                self.first_frame[page].observe(_seconds(event))
            elif kind == "stall":
                self.stalls[page].observe(_seconds(event))
            elif kind == "rtt":
                self.rtt[page].observe(_seconds(event))
            else:
                counts = _LABELLED[kind](self)
                counts[(page, str(event.label))] += 1


_LABELLED = {
    "video_problem": lambda t: t.problems,
    "reconnect": lambda t: t.reconnects,
    "media_failure": lambda t: t.failures,
    "layer": lambda t: t.layers,
}


def _seconds(event: Event) -> float:
    assert event.seconds is not None
    return event.seconds
