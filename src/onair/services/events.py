"""Domain events, published to the broker after the transaction that caused them committed.

Every event about a stream goes to broker topic ``stream:{stream_id}``, so one topic carries a
stream's events in publish order (the broker's ordering contract). Envelopes (JSON; the
dataclasses and their one codec are in ``onair/topics.py``):

``{"kind": "row", "table": t, "type": "INSERT"|"UPDATE"|"DELETE", "record": {…}|null,
"old_record": {…}|null, "commit_timestamp": iso}`` — for postgres_changes subscribers. ``old_record``
holds the row's identity only (``realtime/visibility.py`` ``old_identity``): a pre-edit or deleted
body is never put into an event. Co-host rows, ``chat_sanction`` and ``stream_state`` events also
update the realtime authorization of open channels (``realtime/stream_events.py``).

``{"kind": "stream_state", "stream": {…}, "previous": status, "version": n}`` — consumers drop a
state whose ``version`` is not newer than the last one they saw (publishes of two concurrent
requests may cross after their commits).

``{"kind": "viewer_count", "stream_id": id, "viewer_count": n, "peak_viewers": m}``.

``{"kind": "broadcast", "stream_id": id, "event": name, "payload": {…}}`` — a server broadcast
for the stream's realtime channel (e.g. ``token_renew``).

Publishing never fails the request that caused it: the change is committed, the event is
best-effort, and clients recover missed rows through resync (chat ``after_seq``, GET stream).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from onair.broker.base import Broker
from onair.topics import (
    RowEvent,
    StreamBroadcast,
    StreamEnvelope,
    StreamState,
    ViewerCount,
    encode,
    stream_topic,
)

__all__ = ["EventPublisher", "broadcast_event", "encode", "row_event", "stream_state_event",
           "stream_topic", "viewer_count_event"]

log = structlog.get_logger("onair.events")


def row_event(
    table: str,
    type_: str,
    record: dict[str, Any] | None,
    old_record: dict[str, Any] | None,
    committed_at: datetime,
) -> RowEvent:
    return RowEvent(table, type_, record, old_record, committed_at)


def stream_state_event(stream: dict[str, Any], previous: str | None) -> StreamState:
    return StreamState(stream, previous, stream["version"])


def viewer_count_event(stream_id: str, viewer_count: int, peak_viewers: int) -> ViewerCount:
    return ViewerCount(stream_id, viewer_count, peak_viewers)


def broadcast_event(stream_id: str, event: str, payload: dict[str, Any]) -> StreamBroadcast:
    return StreamBroadcast(stream_id, event, payload)


class EventPublisher:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.published = 0
        self.failed = 0

    async def publish(self, stream_id: str, *events: StreamEnvelope) -> None:
        topic = stream_topic(stream_id)
        try:
            await self._broker.publish_many(topic, [encode(event) for event in events])
            self.published += len(events)
        except Exception as exc:  # the commit stands; see the module docstring
            self.failed += len(events)
            log.warning("event_publish_failed", topic=topic, events=len(events),
                        kinds=sorted({event.kind for event in events}),
                        error=type(exc).__name__)
