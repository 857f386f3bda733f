"""ChatService: sends through a group-committing writer, history, edits and moderation.

Sends are the hot path. Each request validates its body, spends a token of its sender's bucket
and is submitted to a GroupCommit (``onair/group_commit.py``, shared with token issuing): one
batch at a time takes everything queued (up to ``chat_batch_max``), and in ONE transaction locks
the streams involved, finds retries of earlier sends, checks mutes, bans and slow mode, numbers
the new messages and inserts them. Each request is answered when the transaction has
committed, so a busy stream costs one commit per batch, not one per message. Events follow the
commit in seq order.

Why seqs stay gapless and unique with several processes on PostgreSQL: the batch reads each
stream's ``last_chat_seq`` with ``SELECT … FOR UPDATE`` and writes it back in the same
transaction, so two writers on one stream take turns; and the idempotency lookup runs after the
lock, so it sees every message committed by the writer before. On SQLite the database-wide write
lock (``BEGIN IMMEDIATE``) gives the same guarantee.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from onair import problems
from onair.broker.buckets import Buckets, BucketsUnavailable, MemoryBuckets
from onair.domain import chat as rules
from onair.domain.clock import Clock
from onair.domain.identity import Principal
from onair.domain.ids import is_uuid, uuid7
from onair.errors import Problem
from onair.group_commit import GroupCommit
from onair.logs import outage_reason
from onair.realtime.visibility import old_identity
from onair.services.events import EventPublisher, broadcast_event, row_event
from onair.services.streams import StreamService, stream_not_found
from onair.settings import Settings
from onair.store import chat as store
from onair.store.chat import Message, SanctionRow
from onair.store.db import Database
from onair.tally import bump
from onair.topics import StreamEnvelope

log = structlog.get_logger("onair.chat")

CHATTABLE = frozenset({"live", "paused"})
TABLE = "chat_messages"


@dataclass(frozen=True)
class SendResult:
    message: Message
    created: bool  # False: a retry of an earlier send (HTTP 200 instead of 201)


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    next_cursor: int | None
    last_seq: int


@dataclass
class _PendingSend:
    stream_id: str
    sender_id: str
    client_msg_id: str
    body: str
    body_sha256: str
    client_sent_at: datetime | None
    is_staff: bool


def body_digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def send_bucket(settings: Settings) -> rules.TokenBucket:
    return rules.TokenBucket(rate=settings.chat_rate_per_second, burst=settings.chat_rate_burst)


def not_stored() -> Problem:
    return problems.CHAT_UNAVAILABLE("Retry with the same client_msg_id.",
                                     headers={"Retry-After": "1"})


def body_problem(rejected: rules.BodyRejected) -> Problem:
    return problems.by_slug(rejected.reason)(rejected.detail)


class ChatService:
    def __init__(
        self, settings: Settings, db: Database, events: EventPublisher, clock: Clock,
        buckets: Buckets | None = None, streams: StreamService | None = None,
    ) -> None:
        # the stream cache: early refusals of unknown streams, dropped on sanctions
        self.streams = streams
        self.settings = settings
        self.db = db
        self.events = events
        self.clock = clock
        self.buckets = buckets or MemoryBuckets(send_bucket(settings),
                                                settings.chat_rate_tracked_users)
        self._limit_unchecked_logged = -float("inf")
        self._writer: GroupCommit[_PendingSend, SendResult] = GroupCommit(
            self._store_batch, settings.chat_batch_max)
        self._accepting = False
        # Committed batches waiting to be published, in commit order. A separate task publishes
        # them so a slow broker (Redis round trips) never holds up the next commit.
        # Edits, deletes and moderation events go through it as well, so a consumer never sees
        # an UPDATE before the INSERT of its message.
        self._outbox: asyncio.Queue[tuple[str, list[StreamEnvelope]] | None] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        # plain counters for /metrics: sends by outcome (created, duplicate or the problem
        # type), batches whose transaction failed
        self.send_outcomes: dict[str, int] = {}
        self.commit_failures = 0
        # Called with the message after an edit or delete committed (the pinned message follows).
        self.message_listeners: list[Callable[[Message], Awaitable[None]]] = []

    @property
    def writer(self) -> GroupCommit[_PendingSend, SendResult]:
        return self._writer

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def batches(self) -> int:
        """Transactions the group commit has run (the benchmark's mean batch size)."""
        return self._writer.batches

    async def start(self) -> None:
        if self._publisher is None:
            self._accepting = True
            self._publisher = asyncio.create_task(self._publish_loop(), name="chat-publisher")

    async def close(self) -> None:
        """Finish what is queued (commits, then their events), then stop."""
        self._accepting = False
        await self._writer.close()
        if self._publisher is not None:
            self._outbox.put_nowait(None)
            await self._publisher
            self._publisher = None
        await self.buckets.close()

    # --- send ---------------------------------------------------------------------------------

    async def send(
        self,
        principal: Principal,
        stream_id: str,
        raw_body: str,
        client_msg_id: str,
        client_sent_at: datetime | None = None,
    ) -> SendResult:
        try:
            result = await self._send(principal, stream_id, raw_body, client_msg_id,
                                      client_sent_at)
        except Problem as problem:
            bump(self.send_outcomes, problem.type)
            raise
        except Exception:
            bump(self.send_outcomes, "error")
            raise
        bump(self.send_outcomes, "created" if result.created else "duplicate")
        return result

    async def _send(
        self,
        principal: Principal,
        stream_id: str,
        raw_body: str,
        client_msg_id: str,
        client_sent_at: datetime | None,
    ) -> SendResult:
        assert principal.user_id is not None
        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        try:
            body = rules.normalize_body(raw_body, self.settings.chat_max_chars)
        except rules.BodyRejected as rejected:
            raise body_problem(rejected) from None
        if not principal.is_staff:
            await self._spend_token(principal.user_id)
        if self.streams is not None and self.streams.cache.enabled:
            await self._refuse_cached(stream_id)
        if not self._accepting:
            raise problems.CHAT_UNAVAILABLE(title="Chat is shutting down",
                                            headers={"Retry-After": "1"})
        if self._writer.waiting >= self.settings.chat_queue_max:
            raise problems.CHAT_OVERLOADED(headers={"Retry-After": "1"})
        pending = _PendingSend(
            stream_id, principal.user_id, client_msg_id, body, body_digest(body),
            # In UTC, as stored: the first answer must equal every retry's.
            client_sent_at and client_sent_at.astimezone(UTC), principal.is_staff,
        )
        try:
            # A client that gives up cancels only its own wait: the message is stored anyway,
            # where a retry with the same client_msg_id finds it.
            async with asyncio.timeout(self.settings.chat_send_timeout):
                return await self._writer.submit(pending)
        except TimeoutError:
            raise problems.CHAT_TIMEOUT(
                "It may still be stored: retry with the same client_msg_id.",
                headers={"Retry-After": "1"},
            ) from None

    async def _refuse_cached(self, stream_id: str) -> None:
        """Unknown streams are refused before queueing, from the stream cache (a creation drops
        its entry). Everything else is decided in the batch's transaction, against concurrent
        changes: even an ended stream, where a retry of a message sent before the end still
        gets its original answer."""
        assert self.streams is not None
        if await self.streams.access(stream_id) is None:
            raise stream_not_found(stream_id)

    async def _spend_token(self, user_id: str) -> None:
        now = self.clock.now().timestamp()
        try:
            take = await self.buckets.take(user_id, now)
        except BucketsUnavailable as exc:
            # The shared buckets are out of reach (Redis down): chat stays open without its
            # abuse limit rather than closing for everyone; said once a minute in the logs.
            if now - self._limit_unchecked_logged >= 60:
                self._limit_unchecked_logged = now
                log.warning("chat_rate_limit_unchecked", error=str(exc))
            return
        if not take.allowed:
            raise problems.RATE_LIMITED(
                f"at most {self.settings.chat_rate_burst} messages at once and "
                f"{self.settings.chat_rate_per_second:g} per second after that",
                title="Sending too fast",
                headers={"Retry-After": rules.retry_after_header(take.retry_after)},
                retry_after=round(take.retry_after, 3),
            )

    async def _store_batch(self, batch: list[_PendingSend]) -> list[SendResult | Exception]:
        """One group commit: each send's answer (a Problem for a refusal), then its events."""
        try:
            outcomes, inserted = await self._commit(batch)
        except (IntegrityError, DataError) as exc:
            if len(batch) > 1:
                # One message the database refuses must not fail its neighbours: store them
                # one by one.
                log.warning("chat_batch_refused_retrying_singly", size=len(batch),
                            error=type(exc).__name__)
                return [(await self._store_batch([pending]))[0] for pending in batch]
            self.commit_failures += 1
            self._log_failure(exc, len(batch))
            return [not_stored()]
        except Exception as exc:  # noqa: BLE001 - unreachable, timeout …: the batch gets 503
            self.commit_failures += 1
            self._log_failure(exc, len(batch))
            return [not_stored() for _ in batch]  # one exception object per waiting request
        by_stream: dict[str, list[StreamEnvelope]] = {}
        for message in inserted:  # in seq order per stream
            by_stream.setdefault(message.stream_id, []).append(
                row_event(TABLE, "INSERT", message.record(), None, message.created_at)
            )
        for stream_id, events in by_stream.items():
            self._emit(stream_id, *events)
        return outcomes

    @staticmethod
    def _log_failure(exc: Exception, size: int) -> None:
        reason = outage_reason(exc)
        if reason is not None or isinstance(exc, (DBAPIError, TimeoutError)):
            # handled (every caller gets a 503); the type and reason say enough
            log.warning("chat_send_failed", size=size, error=type(exc).__name__, reason=reason)
        else:
            log.error("chat_send_failed", size=size, error=type(exc).__name__, exc_info=exc)

    async def _commit(
        self, batch: list[_PendingSend]
    ) -> tuple[list[SendResult | Exception], list[Message]]:
        now = self.clock.now()
        outcomes: list[SendResult | Exception] = []
        inserted: list[Message] = []
        async with self.db.write() as conn:
            streams = await store.lock_streams(conn, (p.stream_id for p in batch))
            existing = await store.find_by_client_ids(
                conn, ((p.stream_id, p.sender_id, p.client_msg_id) for p in batch)
            )
            sanctions = await store.active_sanctions(conn, streams, now)
            last_sent: dict[tuple[str, str], datetime] = {}
            for stream in streams.values():
                if stream.slow_mode_seconds > 0:
                    senders = {p.sender_id for p in batch if p.stream_id == stream.id}
                    for sender, at in (await store.last_sent_at(conn, stream.id, senders)).items():
                        last_sent[(stream.id, sender)] = at
            seqs = {stream_id: stream.last_chat_seq for stream_id, stream in streams.items()}
            for pending in batch:
                outcome = self._decide(pending, streams, existing, sanctions, last_sent, now)
                if outcome is None:
                    seqs[pending.stream_id] += 1
                    message = Message(
                        id=uuid7(now), stream_id=pending.stream_id, seq=seqs[pending.stream_id],
                        sender_id=pending.sender_id, client_msg_id=pending.client_msg_id,
                        body=pending.body, client_sent_at=pending.client_sent_at, created_at=now,
                        edited_at=None, edited_by=None, deleted_at=None, deleted_by=None,
                        sent_body_sha256=pending.body_sha256,
                    )
                    existing[(pending.stream_id, pending.sender_id, pending.client_msg_id)] = message
                    last_sent[(pending.stream_id, pending.sender_id)] = now
                    inserted.append(message)
                    outcome = SendResult(message, created=True)
                outcomes.append(outcome)
            await store.insert_messages(conn, inserted)
            await store.set_last_seqs(
                conn, {sid: seq for sid, seq in seqs.items() if seq != streams[sid].last_chat_seq}
            )
        return outcomes, inserted

    def _decide(
        self,
        pending: _PendingSend,
        streams: dict[str, store.ChatStream],
        existing: dict[tuple[str, str, str], Message],
        sanctions: dict[tuple[str, str], list[rules.Sanction]],
        last_sent: dict[tuple[str, str], datetime],
        now: datetime,
    ) -> SendResult | Problem | None:
        """None: store it. Otherwise the answer for this send, decided inside the batch."""
        stream = streams.get(pending.stream_id)
        if stream is None:
            return stream_not_found(pending.stream_id)
        earlier = existing.get((pending.stream_id, pending.sender_id, pending.client_msg_id))
        if earlier is not None:
            if earlier.sent_body_sha256 != pending.body_sha256:
                return problems.CLIENT_MSG_ID_REUSED(
                    "This client_msg_id already names a message with a different body; "
                    "use a new id for a new message.",
                    message_id=earlier.id, seq=earlier.seq,
                )
            return SendResult(earlier, created=False)
        if stream.status not in CHATTABLE:
            return problems.STREAM_NOT_LIVE(
                f"the stream is {stream.status}; chat is open while live or paused",
                stream_status=stream.status)
        exempt = pending.is_staff or pending.sender_id == stream.seller_id
        if exempt:
            return None
        block = rules.active_block(sanctions.get((pending.stream_id, pending.sender_id), ()), now)
        if block is not None:
            return sanction_problem(block)
        wait = rules.slow_mode_wait(
            last_sent.get((pending.stream_id, pending.sender_id)), now, stream.slow_mode_seconds
        )
        if wait > 0:
            return problems.SLOW_MODE(
                f"one message every {stream.slow_mode_seconds} s in this chat",
                headers={"Retry-After": rules.retry_after_header(wait)},
                retry_after=round(wait, 3), slow_mode_seconds=stream.slow_mode_seconds,
            )
        return None

    def _emit(self, stream_id: str, *events: StreamEnvelope) -> None:
        """Queue events of a committed change for publishing, in commit order."""
        self._outbox.put_nowait((stream_id, list(events)))

    async def _publish_loop(self) -> None:
        while (item := await self._outbox.get()) is not None:
            try:
                await self.events.publish(item[0], *item[1])  # never raises (best effort)
            finally:
                self._outbox.task_done()
        self._outbox.task_done()

    async def events_published(self) -> None:
        """Wait until every event of what has committed so far was handed to the broker."""
        await self._outbox.join()

    # --- read ---------------------------------------------------------------------------------

    async def page(
        self, stream_id: str, *, before_seq: int | None, after_seq: int | None, limit: int | None
    ) -> Page:
        """History (``before_seq``, newest first) or resync (``after_seq``, oldest first)."""
        if before_seq is not None and after_seq is not None:
            raise problems.CONFLICTING_CURSORS()
        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        size = limit or self.settings.chat_page_default
        if not 1 <= size <= self.settings.chat_page_max:
            raise problems.INVALID_LIMIT(
                f"limit must be between 1 and {self.settings.chat_page_max}")
        async with self.db.read() as conn:
            stream = await store.get_stream(conn, stream_id)
            if stream is None:
                raise stream_not_found(stream_id)
            if after_seq is not None:
                rows = await store.page_after(conn, stream_id, after_seq, size + 1)
            else:
                rows = await store.page_before(conn, stream_id, before_seq, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, rows[-1].seq if more else None, stream.last_chat_seq)

    # --- edit and delete ----------------------------------------------------------------------

    async def edit(
        self, principal: Principal, stream_id: str, message_id: str, raw_body: str
    ) -> Message:
        assert principal.user_id is not None
        try:
            body = rules.normalize_body(raw_body, self.settings.chat_max_chars)
        except rules.BodyRejected as rejected:
            raise body_problem(rejected) from None
        now = self.clock.now()
        async with self.db.write() as conn:
            before = await self._message(conn, stream_id, message_id)
            refusal = rules.edit_refusal(
                editor_id=principal.user_id, sender_id=before.sender_id,
                created_at=before.created_at, deleted=before.deleted, now=now,
                window=timedelta(seconds=self.settings.chat_edit_window),
            )
            if refusal is not None:
                raise refusal_problem(refusal, self.settings.chat_edit_window)
            await self._refuse_sanctioned(conn, principal, stream_id, now)
            after, outcome = self._merge(before, rules.Edit(body=body, at=now, by=principal.user_id))
            if outcome is rules.MergeOutcome.SUPERSEDED:
                raise problems.EDIT_SUPERSEDED("edits resolve by server time, then editor id",
                                               message_id=before.id)
            if outcome is rules.MergeOutcome.DELETED:
                raise refusal_problem(rules.Refusal.MESSAGE_DELETED)
            await store.update_message(conn, after)
        self._emit(stream_id, row_event(TABLE, "UPDATE", after.record(), old_identity(TABLE, before.record()), now))
        for listener in self.message_listeners:
            await listener(after)
        return after

    async def _refuse_sanctioned(self, conn: Any, principal: Principal, stream_id: str,
                                 now: datetime) -> None:
        """An edit is new text: a muted or banned user may not edit, as they may not send (403
        ``chat-muted``/``chat-banned``, the send's problem types). Deleting one's own message
        stays allowed: taking text back cannot carry anything past the sanction."""
        if principal.is_staff:
            return
        stream = await store.get_stream(conn, stream_id)
        if stream is None or stream.seller_id == principal.user_id:
            return
        sanctions = await store.active_sanctions(conn, [stream_id], now)
        block = rules.active_block(sanctions.get((stream_id, principal.user_id or ""), ()), now)
        if block is not None:
            raise sanction_problem(block)

    async def delete(self, principal: Principal, stream_id: str, message_id: str) -> Message:
        assert principal.user_id is not None
        now = self.clock.now()
        async with self.db.write() as conn:
            before = await self._message(conn, stream_id, message_id)
            stream = await store.get_stream(conn, stream_id)
            assert stream is not None  # the message's foreign key
            refusal = rules.delete_refusal(
                actor_id=principal.user_id, actor_is_staff=principal.is_staff,
                sender_id=before.sender_id, seller_id=stream.seller_id,
            )
            if refusal is not None:
                raise refusal_problem(refusal)
            after, outcome = self._merge(before, rules.Delete(at=now, by=principal.user_id))
            if outcome is rules.MergeOutcome.APPLIED:
                await store.update_message(conn, after)
        if outcome is rules.MergeOutcome.APPLIED:
            self._emit(stream_id, row_event(TABLE, "UPDATE", after.record(), old_identity(TABLE, before.record()), now))
        for listener in self.message_listeners:  # on a retry too: a failed one runs again
            await listener(after if outcome is rules.MergeOutcome.APPLIED else before)
        # deleting a tombstone again is a no-op, like any retry
        return after if outcome is rules.MergeOutcome.APPLIED else before

    async def get(self, stream_id: str, message_id: str) -> Message:
        async with self.db.read() as conn:
            return await self._message(conn, stream_id, message_id, lock=False)

    async def _message(
        self, conn: Any, stream_id: str, message_id: str, *, lock: bool = True
    ) -> Message:
        message = None
        if is_uuid(stream_id) and is_uuid(message_id):
            message = await store.get_message(conn, stream_id, message_id, lock=lock)
        if message is None:
            raise problems.MESSAGE_NOT_FOUND(f"stream {stream_id} has no message {message_id}")
        return message

    @staticmethod
    def _merge(
        message: Message, change: rules.Edit | rules.Delete
    ) -> tuple[Message, rules.MergeOutcome]:
        state = rules.MessageState(
            body=message.body, edited_at=message.edited_at, edited_by=message.edited_by,
            deleted_at=message.deleted_at, deleted_by=message.deleted_by,
        )
        merged, outcome = rules.merge(state, change)
        return (
            replace(message, body=merged.body, edited_at=merged.edited_at,
                    edited_by=merged.edited_by, deleted_at=merged.deleted_at,
                    deleted_by=merged.deleted_by),
            outcome,
        )

    # --- moderation -------------------------------------------------------------------------

    async def sanction(
        self,
        principal: Principal,
        stream_id: str,
        user_id: str,
        kind: rules.SanctionKind,
        duration_seconds: int | None,
        reason: str | None,
    ) -> SanctionRow:
        assert principal.user_id is not None
        if kind == "mute" and duration_seconds is None:
            raise problems.MUTE_NEEDS_DURATION("use a ban for a sanction without an end")
        if duration_seconds is not None and not (
            1 <= duration_seconds <= self.settings.chat_sanction_max_seconds
        ):
            raise problems.INVALID_DURATION(
                f"between 1 and {self.settings.chat_sanction_max_seconds}")
        now = self.clock.now()
        until = now + timedelta(seconds=duration_seconds) if duration_seconds is not None else None
        row = SanctionRow(
            id=uuid7(now), stream_id=stream_id, user_id=user_id, kind=kind, until=until,
            reason=reason, created_by=principal.user_id, created_at=now, lifted_at=None,
        )
        async with self.db.write() as conn:
            stream = await self._moderated_stream(conn, principal, stream_id)
            if user_id == stream.seller_id:
                raise problems.CANNOT_SANCTION_SELLER()
            await store.insert_sanction(conn, row)
        await self._access_changed(stream_id)
        self._emit(stream_id, broadcast_event(
            stream_id, "chat_sanction",
            {"user_id": user_id, "kind": kind, "until": until, "lifted": False}))
        return row

    async def lift(
        self, principal: Principal, stream_id: str, user_id: str, kind: str | None
    ) -> int:
        now = self.clock.now()
        async with self.db.write() as conn:
            await self._moderated_stream(conn, principal, stream_id)
            lifted = await store.lift_sanctions(conn, stream_id, user_id, kind, now)
        if lifted:
            await self._access_changed(stream_id)
            self._emit(stream_id, broadcast_event(
                stream_id, "chat_sanction",
                {"user_id": user_id, "kind": kind, "until": None, "lifted": True}))
        return lifted

    async def _access_changed(self, stream_id: str) -> None:
        # after the commit, before the event: no process authorizes from the old sanctions
        if self.streams is not None:
            await self.streams.cache.changed(stream_id, row=False)

    async def sanctions(self, principal: Principal, stream_id: str) -> list[SanctionRow]:
        async with self.db.read() as conn:
            await self._moderated_stream(conn, principal, stream_id)
            return await store.list_active_sanctions(conn, stream_id, self.clock.now())

    async def set_slow_mode(self, principal: Principal, stream_id: str, seconds: int) -> int:
        if not 0 <= seconds <= self.settings.chat_slow_mode_max_seconds:
            raise problems.INVALID_SLOW_MODE(
                f"between 0 (off) and {self.settings.chat_slow_mode_max_seconds}")
        async with self.db.write() as conn:
            await self._moderated_stream(conn, principal, stream_id)
            await store.set_slow_mode(conn, stream_id, seconds)
        self._emit(stream_id,
                   broadcast_event(stream_id, "chat_settings", {"slow_mode_seconds": seconds}))
        return seconds

    async def chat_settings(self, stream_id: str) -> store.ChatStream:
        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        async with self.db.read() as conn:
            stream = await store.get_stream(conn, stream_id)
        if stream is None:
            raise stream_not_found(stream_id)
        return stream

    async def _moderated_stream(
        self, conn: Any, principal: Principal, stream_id: str
    ) -> store.ChatStream:
        stream = await store.get_stream(conn, stream_id) if is_uuid(stream_id) else None
        if stream is None:
            raise stream_not_found(stream_id)
        if not rules.is_moderator(actor_id=principal.user_id, actor_is_staff=principal.is_staff,
                                  seller_id=stream.seller_id):
            raise refusal_problem(rules.Refusal.NOT_MODERATOR)
        return stream


def sanction_problem(block: rules.SendBlock) -> Problem:
    until = "until lifted" if block.until is None else f"until {block.until.isoformat()}"
    kind = problems.CHAT_BANNED if block.kind == "ban" else problems.CHAT_MUTED
    return kind(
        f"{block.reason or 'no reason given'} ({until})",
        reason=block.reason, until=block.until,
    )


def refusal_problem(refusal: rules.Refusal, window: float = 0) -> Problem:
    detail = None
    if refusal is rules.Refusal.EDIT_WINDOW_CLOSED:
        detail = f"messages can be edited for {window:g} s after they were sent"
    return problems.by_slug(refusal.value)(detail)
