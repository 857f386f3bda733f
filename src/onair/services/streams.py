"""StreamService: the stream lifecycle, viewers and heartbeats; owns their transactions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from onair import problems
from onair.domain import streams as rules
from onair.domain.clock import Clock
from onair.domain.identity import Principal, Role
from onair.domain.ids import is_uuid, uuid7
from onair.domain.streams import Action, IllegalTransition, Status, Stream
from onair.errors import Problem
from onair.realtime.visibility import old_identity
from onair.services.events import (
    EventPublisher,
    row_event,
    stream_state_event,
    viewer_count_event,
)
from onair.services.stream_cache import StreamCache
from onair.settings import Settings
from onair.store import streams as store
from onair.store.db import Database
from onair.topics import StreamEnvelope

STREAMS_TABLE = "stream_sessions"
VIEWERS_TABLE = "stream_viewers"


def stream_not_found(stream_id: str) -> Problem:
    return problems.STREAM_NOT_FOUND(f"no stream with id {stream_id!r}", stream_id=stream_id)


async def existing_stream(conn: Any, stream_id: str, *, lock: bool = False) -> Stream:
    """The stream (row-locked with ``lock``), or its 404 problem."""
    stream = await store.get_stream(conn, stream_id, lock=lock)
    if stream is None:
        raise stream_not_found(stream_id)
    return stream


def illegal_transition(err: IllegalTransition) -> Problem:
    return problems.ILLEGAL_TRANSITION(str(err), current_status=err.current.value,
                                       action=err.action.value, allowed_actions=err.allowed)


def not_owner() -> Problem:
    return problems.NOT_STREAM_OWNER(
        "only the stream's seller, a moderator or an admin may do this")


def require_signed_in(principal: Principal) -> str:
    if not principal.is_signed_in or principal.user_id is None:
        raise problems.UNAUTHORIZED("sign in: this needs a user token, not the anon key")
    return principal.user_id


@dataclass(frozen=True)
class StreamAccess:
    """Who may do what in a stream's realtime channel: its seller, co-hosts, banned and muted
    users (with when their sanction ends; None: until lifted) and whether it has ended."""

    seller_id: str
    cohosts: frozenset[str]
    banned: frozenset[str]
    bans: dict[str, datetime | None] = field(default_factory=dict)
    mutes: dict[str, datetime | None] = field(default_factory=dict)
    ended: bool = False


@dataclass(frozen=True)
class HeartbeatResult:
    stream: Stream
    as_host: bool


class StreamService:
    def __init__(self, db: Database, events: EventPublisher, clock: Clock,
                 settings: Settings, cache: StreamCache | None = None) -> None:
        self._db = db
        self._events = events
        self._clock = clock
        self._settings = settings
        # without one (tests building services by hand) nothing is cached
        self.cache = cache if cache is not None else StreamCache(None, ttl=0, max_streams=0)
        self.tokens_revoked = 0  # Agora tokens revoked by stream ends (for /metrics)

    # --- reading -------------------------------------------------------------------------

    async def get(self, stream_id: str, *, fresh: bool = False) -> Stream:
        """The stream, from the cache unless ``fresh`` (a decision on its timestamps)."""
        stream = await self.find(stream_id, fresh=fresh)
        if stream is None:
            raise stream_not_found(stream_id)
        return stream

    async def find(self, stream_id: str, *, fresh: bool = False) -> Stream | None:
        if not is_uuid(stream_id):
            return None
        if fresh:
            return await self._read(stream_id)
        return await self.cache.row(stream_id, lambda: self._read(stream_id))

    async def _read(self, stream_id: str) -> Stream | None:
        async with self._db.read() as conn:
            return await store.get_stream(conn, stream_id)

    async def access(self, stream_id: str, *, fresh: bool = False) -> StreamAccess | None:
        """What the realtime policies need about ``stream_id``; None for an unknown stream.
        ``fresh``: from the database, not the cache (a check for changes whose events were lost)."""
        if not is_uuid(stream_id):
            return None
        return await self.cache.access_of(stream_id, lambda: self._read_access(stream_id),
                                          self._access_life, fresh=fresh)

    def _access_life(self, access: StreamAccess | None) -> float | None:
        """Cached facts hold until their first sanction ends (then read again)."""
        if access is None:
            return None
        ends = [until for held in (access.bans, access.mutes) for until in held.values()
                if until is not None]
        return (min(ends) - self._clock.now()).total_seconds() if ends else None

    async def _read_access(self, stream_id: str) -> StreamAccess | None:
        async with self._db.read() as conn:
            stream = await store.get_stream(conn, stream_id)
            if stream is None:
                return None
            cohosts = await store.cohost_ids(conn, stream_id)
            sanctions = await store.active_sanctions(conn, stream_id, self._clock.now())
        held: dict[str, dict[str, datetime | None]] = {"ban": {}, "mute": {}}
        for user, kind, until in sanctions:
            known = held.setdefault(kind, {})
            held_until = known.get(user)
            if user not in known or (held_until is not None and (until is None or until > held_until)):
                known[user] = until  # the longest sanction of a kind stands
        return StreamAccess(stream.seller_id, frozenset(cohosts), frozenset(held["ban"]),
                            held["ban"], held["mute"], stream.status is Status.ENDED)

    async def list(self, *, status: Status | None, seller_id: str | None, cursor: str | None,
                   limit: int) -> tuple[list[Stream], str | None]:
        if cursor is not None and not is_uuid(cursor):
            raise problems.INVALID_CURSOR("cursor must be the next_cursor of a previous page")
        async with self._db.read() as conn:
            page = await store.list_streams(conn, status=status, seller_id=seller_id,
                                            before_id=cursor, limit=limit + 1)
        next_cursor = page[limit - 1].id if len(page) > limit else None
        return page[:limit], next_cursor

    async def active_viewers(self) -> int:
        async with self._db.read() as conn:
            return await store.active_viewers(conn)

    # --- lifecycle -----------------------------------------------------------------------

    async def create(self, principal: Principal, title: str) -> Stream:
        user_id = require_signed_in(principal)
        if principal.role not in (Role.SELLER, Role.ADMIN, Role.SERVICE):
            raise problems.NOT_A_SELLER("only sellers can create streams")
        now = self._clock.now()
        stream = Stream(id=uuid7(now), seller_id=user_id, title=title, status=Status.SCHEDULED,
                        version=1, created_at=now, updated_at=now)
        async with self._db.write() as conn:
            await store.insert_stream(conn, stream)
        await self.cache.changed(stream.id)  # it may be cached as missing
        record = store.to_record(stream)
        await self._events.publish(stream.id, row_event(STREAMS_TABLE, "INSERT", record, None, now),
                                   stream_state_event(record, None))
        return stream

    async def act(self, principal: Principal | None, stream_id: str, action: Action,
                  reason: str | None = None) -> Stream:
        """Apply ``action``; ``principal`` None means the system (the reaper)."""

        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        for _attempt in range(self._settings.transition_retries + 1):
            async with self.cache.changing(stream_id), self._db.write() as conn:
                before = await existing_stream(conn, stream_id)
                if principal is not None and not rules.may_control(principal, before):
                    raise not_owner()
                now = self._clock.now()
                try:
                    after = rules.transition(before, action, now, reason)
                except IllegalTransition as err:
                    raise illegal_transition(err) from None
                if not await store.update_if_version(conn, after, before.version):
                    continue  # lost a race: read again and re-decide
                actor = principal.user_id if principal is not None else None
                await store.insert_transition(conn, before, after, actor, reason)
                left: list[str] = []
                if action is Action.END:
                    left = await store.present_viewers(conn, stream_id)
                    await store.mark_left(conn, stream_id, left, now)
                    self.tokens_revoked += await store.revoke_stream_tokens(
                        conn, stream_id, now, "stream_ended")
            await self._publish_transition(before, after, left)
            return after
        raise problems.CONCURRENT_UPDATE(
            "the stream kept changing while this request was applied; read it and retry",
            stream_id=stream_id)

    async def _publish_transition(self, before: Stream, after: Stream, left: Sequence[str]) -> None:
        now = after.updated_at
        record, old = store.to_record(after), store.to_record(before)
        events: list[StreamEnvelope] = [
            row_event(STREAMS_TABLE, "UPDATE", record, old_identity(STREAMS_TABLE, old), now),
            stream_state_event(record, before.status.value),
        ]
        for user_id in left:
            events.append(row_event(VIEWERS_TABLE, "UPDATE", {
                "stream_id": after.id, "user_id": user_id, "left_at": now}, None, now))
        if before.viewer_count != after.viewer_count:
            events.append(viewer_count_event(after.id, after.viewer_count, after.peak_viewers))
        await self._events.publish(after.id, *events)

    # --- viewers and heartbeats ----------------------------------------------------------

    async def join(self, principal: Principal, stream_id: str) -> Stream:
        user_id = require_signed_in(principal)
        return await self._change_presence(stream_id, user_id, present=True)

    async def leave(self, principal: Principal, stream_id: str) -> Stream:
        user_id = require_signed_in(principal)
        return await self._change_presence(stream_id, user_id, present=False)

    async def _change_presence(self, stream_id: str, user_id: str, *, present: bool,
                               silent_since: datetime | None = None) -> Stream:
        """Join or leave; with ``silent_since``, leave only if still silent since then."""
        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        async with self._db.write() as conn:
            # The row lock serializes joins/leaves of one stream, so counts and peak are exact.
            stream = await existing_stream(conn, stream_id, lock=True)
            if present and stream.status is Status.ENDED:
                raise problems.STREAM_ENDED("an ended stream cannot be joined", stream_id=stream_id)
            now = self._clock.now()
            existing = await store.get_viewer(conn, stream_id, user_id)
            was_present = existing is not None and existing.left_at is None
            if silent_since is not None and was_present \
                    and existing.last_heartbeat_at > silent_since:
                return stream
            if present:
                await store.upsert_present_viewer(conn, stream_id, user_id, now, existing)
            elif was_present:
                await store.mark_left(conn, stream_id, [user_id], now)
            changed = was_present != present
            if changed:
                count = await store.count_present(conn, stream_id)
                count, peak = await store.set_viewer_counts(conn, stream_id, count)
                refreshed = await store.get_stream(conn, stream_id)
                assert refreshed is not None
                stream = refreshed
            row = await store.get_viewer(conn, stream_id, user_id)
        if changed:
            await self.cache.changed(stream_id, access=False)  # the row's viewer counts
            type_ = "INSERT" if existing is None else "UPDATE"
            await self._events.publish(
                stream_id,
                row_event(VIEWERS_TABLE, type_, store.viewer_record(row),
                          store.viewer_record(existing) if existing is not None else None, now),
                viewer_count_event(stream_id, count, peak),
            )
        return stream

    async def heartbeat(self, principal: Principal, stream_id: str) -> HeartbeatResult:
        """The seller's heartbeat keeps a live stream live; a viewer's keeps them counted."""

        user_id = require_signed_in(principal)
        stream = await self.get(stream_id)  # seller and status: every change of them drops it
        if stream.seller_id != user_id:
            if stream.status is Status.ENDED:
                raise problems.STREAM_ENDED("an ended stream takes no heartbeats",
                                            stream_id=stream_id)
            return HeartbeatResult(await self._change_presence(stream_id, user_id, present=True),
                                   as_host=False)
        if rules.host_heartbeat_action(stream) is Action.RESUME:
            try:
                stream = await self.act(None, stream_id, Action.RESUME, "host_returned")
            except Problem as problem:
                if not problems.ILLEGAL_TRANSITION.matches(problem):
                    raise
        async with self._db.write() as conn:
            await store.touch_host(conn, stream_id, self._clock.now())
        await self.cache.changed(stream_id, access=False)  # last_host_heartbeat_at
        return HeartbeatResult(await self.get(stream_id), as_host=True)

    # --- the reaper's moves --------------------------------------------------------------

    async def reap(self) -> dict[str, int]:
        """One reaper pass: pause host-less streams, end long pauses, drop silent viewers."""

        now = self._clock.now()
        s = self._settings
        async with self._db.read() as conn:
            hostless = await store.live_streams_without_host(conn, now - timedelta(seconds=s.host_grace))
            stale_pauses = await store.streams_paused_since(conn, now - timedelta(seconds=s.pause_timeout))
            silent = await store.stale_viewers(conn, now - timedelta(seconds=s.viewer_timeout))
        done = {"paused": 0, "ended": 0, "viewers_left": 0}
        for stream_id in hostless + stale_pauses:
            stream = await self.get(stream_id, fresh=True)  # decided on heartbeat times
            decision = rules.reaper_action(stream, self._clock.now(), s.host_grace, s.pause_timeout)
            if decision is None:
                continue  # a heartbeat or the seller got there first
            action, reason = decision
            try:
                await self.act(None, stream_id, action, reason)
            except Problem as problem:
                if not (problems.ILLEGAL_TRANSITION.matches(problem)
                        or problems.CONCURRENT_UPDATE.matches(problem)):
                    raise
                continue
            done["paused" if action is Action.PAUSE else "ended"] += 1
        cutoff = now - timedelta(seconds=s.viewer_timeout)
        for stream_id, user_id in silent:
            before = await self.get(stream_id, fresh=True)
            after = await self._change_presence(stream_id, user_id, present=False,
                                                silent_since=cutoff)
            done["viewers_left"] += int(after.viewer_count < before.viewer_count)
        return done
