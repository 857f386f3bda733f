"""A deliberately simple model of one stream's chat, the oracle for Property 13.

Operations are applied one at a time with strictly increasing server times, so there is no race
to resolve here: the model states the observable rules plainly (dicts and ifs) and the property
test checks that the real service and store end up in exactly the same state. Only body
normalization is shared with the implementation; it has its own properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from onair.domain.chat import BodyRejected, normalize_body


@dataclass
class ModelMessage:
    seq: int
    sender_id: str
    client_msg_id: str
    sent_body: str  # the normalized body of the original send, what retries are compared with
    body: str
    created_at: datetime
    edited_at: datetime | None = None
    edited_by: str | None = None
    deleted_at: datetime | None = None
    deleted_by: str | None = None

    def observable(self) -> tuple[object, ...]:
        return (
            self.seq, self.sender_id, self.client_msg_id, self.body, self.created_at,
            self.edited_at, self.edited_by, self.deleted_at, self.deleted_by,
        )


class ChatReferenceModel:
    """Returns the HTTP status the API must answer for each operation."""

    def __init__(self, *, seller_id: str, max_chars: int, edit_window: timedelta) -> None:
        self.seller_id = seller_id
        self.max_chars = max_chars
        self.edit_window = edit_window
        self.by_seq: dict[int, ModelMessage] = {}
        self.by_key: dict[tuple[str, str], int] = {}

    def send(self, sender_id: str, client_msg_id: str, raw: str, now: datetime) -> tuple[int, int | None]:
        try:
            body = normalize_body(raw, self.max_chars)
        except BodyRejected:
            return 422, None
        seq = self.by_key.get((sender_id, client_msg_id))
        if seq is not None:
            if self.by_seq[seq].sent_body != body:
                return 409, None
            return 200, seq
        seq = len(self.by_seq) + 1
        self.by_seq[seq] = ModelMessage(seq, sender_id, client_msg_id, body, body, now)
        self.by_key[(sender_id, client_msg_id)] = seq
        return 201, seq

    def edit(self, actor_id: str, seq: int, raw: str, now: datetime) -> int:
        try:  # a malformed request is refused before anything is looked up
            body = normalize_body(raw, self.max_chars)
        except BodyRejected:
            return 422
        message = self.by_seq.get(seq)
        if message is None:
            return 404
        if actor_id != message.sender_id:
            return 403
        if message.deleted_at is not None:
            return 409
        if now - message.created_at > self.edit_window:
            return 403
        message.body, message.edited_at, message.edited_by = body, now, actor_id
        return 200

    def delete(self, actor_id: str, actor_is_staff: bool, seq: int, now: datetime) -> int:
        message = self.by_seq.get(seq)
        if message is None:
            return 404
        if not (actor_is_staff or actor_id in (message.sender_id, self.seller_id)):
            return 403
        if message.deleted_at is None:
            message.body = ""
            message.edited_at = message.edited_by = None
            message.deleted_at, message.deleted_by = now, actor_id
        return 200

    def state(self) -> list[tuple[object, ...]]:
        return [self.by_seq[seq].observable() for seq in sorted(self.by_seq)]
