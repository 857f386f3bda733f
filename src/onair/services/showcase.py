"""ShowcaseService: who may change a stream's showcase, its transactions and its events.

The seller, the stream's co-hosts and staff (moderators, admins, the service role) may change it;
buyers and the anon key may only read it. Changes are refused on ended streams (409
``stream-ended``). Each accepted change commits the new showcase (version + 1) under the stream's
row lock, so changes of one stream are serialized and versions are gapless, then publishes one
``showcase`` broadcast (domain ``change_payload``) on the stream's topic. Publishes of two requests
may cross after their commits: clients apply versions in order and re-read on a gap.

The pinned chat message is part of the showcase: pinning copies the message (only a visible,
undeleted one), and ``message_changed`` — called by ChatService after an edit or delete commits —
keeps the copy's body in step or unpins it, so a deleted or pre-edit body never stays on screen.
"""

from __future__ import annotations

from typing import Any

from onair import problems
from onair.domain import showcase as rules
from onair.domain.clock import Clock
from onair.domain.identity import Principal
from onair.domain.ids import is_uuid, uuid7
from onair.domain.streams import Status, Stream
from onair.errors import Problem
from onair.services.events import EventPublisher, broadcast_event
from onair.services.streams import existing_stream, require_signed_in, stream_not_found
from onair.settings import Settings
from onair.store import chat as chat_store
from onair.store import showcase as store
from onair.store import streams as stream_store
from onair.store.chat import Message
from onair.store.db import Database

EVENT = "showcase"


def limits_of(settings: Settings) -> rules.Limits:
    return rules.Limits(max_products=settings.showcase_max_products,
                        title_max_chars=settings.showcase_title_max_chars,
                        deal_max_seconds=settings.showcase_deal_max_seconds)


def not_editor() -> Problem:
    return problems.NOT_SHOWCASE_EDITOR(
        "only the stream's seller, its co-hosts and moderators may change its showcase")


def problem_of(err: rules.ShowcaseError) -> Problem:
    return problems.by_slug(err.slug)(err.detail)


class ShowcaseService:
    def __init__(self, db: Database, events: EventPublisher, clock: Clock,
                 settings: Settings) -> None:
        self._db = db
        self._events = events
        self._clock = clock
        self._limits = limits_of(settings)

    async def read(self, stream_id: str) -> dict[str, Any]:
        """The current showcase as REST returns it (anyone who may read the stream)."""
        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        async with self._db.read() as conn:
            await existing_stream(conn, stream_id)
            showcase = await store.load(conn, stream_id)
        return rules.snapshot(showcase, self._clock.now())

    async def change(self, principal: Principal, stream_id: str,
                     command: rules.Command) -> dict[str, Any]:
        """Apply ``command`` for ``principal``; the new showcase (REST shape)."""
        user_id = require_signed_in(principal)
        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        async with self._db.write() as conn:
            stream = await existing_stream(conn, stream_id, lock=True)
            await self._check_editor(conn, principal, user_id, stream)
            if isinstance(command, rules.PinMessage):
                command = await self._pinnable(conn, stream_id, command.message, user_id)
            change = await self._apply(conn, stream_id, command)
        await self._publish(change)
        return rules.snapshot(change.after, self._clock.now())

    async def message_changed(self, message: Message) -> None:
        """After a chat edit or delete committed: follow it if that message is pinned."""
        async with self._db.write() as conn:
            await existing_stream(conn, message.stream_id, lock=True)
            showcase = await store.load(conn, message.stream_id)
            held = showcase.pinned_message
            if held is None or held.message_id != message.id or (
                    not message.deleted and message.body == held.body):
                return
            command: rules.Command
            if message.deleted:
                command = rules.UnpinMessage(message.id)
            else:
                command = rules.PinMessage(rules.PinnedMessage(
                    held.message_id, held.seq, held.sender_id, message.body, held.pinned_by,
                    held.pinned_at))
            change = await self._apply(conn, message.stream_id, command)
        await self._publish(change)

    async def _apply(self, conn: Any, stream_id: str, command: rules.Command) -> rules.Change:
        before = await store.load(conn, stream_id)
        now = self._clock.now()
        try:
            change = rules.apply(before, command, now, self._limits)
        except rules.ShowcaseError as err:
            raise problem_of(err) from None
        if not await store.save(conn, before, change.after, now):
            raise problems.CONCURRENT_UPDATE(
                "the showcase changed while this request was applied; read it and retry",
                title="Showcase changed concurrently")
        return change

    async def _publish(self, change: rules.Change) -> None:
        payload = rules.change_payload(change, self._clock.now())
        await self._events.publish(change.after.stream_id,
                                   broadcast_event(change.after.stream_id, EVENT, payload))

    async def _check_editor(self, conn: Any, principal: Principal, user_id: str,
                            stream: Stream) -> None:
        if not (principal.is_staff or user_id == stream.seller_id
                or user_id in await stream_store.cohost_ids(conn, stream.id)):
            raise not_editor()
        if stream.status is Status.ENDED:
            raise problems.STREAM_ENDED("an ended stream's showcase cannot change",
                                        stream_id=stream.id)

    async def _pinnable(self, conn: Any, stream_id: str, wanted: rules.PinnedMessage,
                        user_id: str) -> rules.PinMessage:
        """The message to pin, read (and row-locked) now: a delete committing first wins."""
        message = None
        if is_uuid(wanted.message_id):
            message = await chat_store.get_message(conn, stream_id, wanted.message_id, lock=True)
        if message is None or message.deleted:
            raise problems.MESSAGE_NOT_FOUND(
                f"stream {stream_id} has no message {wanted.message_id}")
        return rules.PinMessage(rules.PinnedMessage(
            message.id, message.seq, message.sender_id, message.body, user_id, self._clock.now()))


def new_product_id(clock: Clock) -> str:
    return uuid7(clock.now())
