"""Examples for the pure chat rules (the properties are in tests/property/test_chat_rules_properties.py)."""

from datetime import UTC, datetime, timedelta

import pytest

from onair.domain.chat import (
    BodyRejected,
    Delete,
    Edit,
    MergeOutcome,
    MessageState,
    Refusal,
    Sanction,
    TokenBucket,
    active_block,
    delete_refusal,
    edit_refusal,
    merge,
    normalize_body,
    retry_after_header,
    slow_mode_wait,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  hello  ", "hello"),
        ("line1\r\nline2\rline3", "line1\nline2\nline3"),
        ("a\tb", "a\tb"),  # tabs stay: they are whitespace, not a hidden control
        ("e\u0301", "\u00e9"),  # NFC composes
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("'; DROP TABLE chat_messages; --", "'; DROP TABLE chat_messages; --"),
        ("\n\nhi\n\n", "hi"),
        ("🛍️ deal", "🛍️ deal"),
    ],
)
def test_normalize_body_examples(raw: str, expected: str) -> None:
    assert normalize_body(raw, 500) == expected


@pytest.mark.parametrize(
    ("raw", "max_chars", "reason"),
    [
        ("", 500, "body-empty"),
        ("   \n\t \u3000", 500, "body-empty"),
        ("\x00\x01", 500, "body-forbidden-character"),
        ("hi\x00", 500, "body-forbidden-character"),  # refused, not silently removed
        ("a\x7fb", 500, "body-forbidden-character"),
        ("a\x85b", 500, "body-forbidden-character"),
        ("buy \u202egnp.exe", 500, "body-forbidden-character"),  # bidi override
        ("\u200b\u200b", 500, "body-empty"),  # invisible only
        ("\u2800 \u3164", 500, "body-empty"),
        ("x" * 501, 500, "body-too-long"),
        ("ab\ud800", 500, "body-invalid-unicode"),
        (123, 500, "body-not-text"),
    ],
)
def test_normalize_body_rejects(raw: object, max_chars: int, reason: str) -> None:
    with pytest.raises(BodyRejected) as info:
        normalize_body(raw, max_chars)  # type: ignore[arg-type]
    assert info.value.reason == reason
    assert info.value.detail


def test_length_counts_characters_after_normalization() -> None:
    assert normalize_body("é" * 500, 500) == "é" * 500  # 1000 UTF-8 bytes, 500 characters
    assert normalize_body("e\u0301" * 500, 500) == "\u00e9" * 500  # 1000 code points before NFC


def test_delete_wins_over_a_later_edit() -> None:
    state = MessageState(body="hi")
    deleted, outcome = merge(state, Delete(at=T0, by="mod"))
    assert outcome is MergeOutcome.APPLIED and deleted.body == "" and deleted.deleted
    after, outcome = merge(deleted, Edit(body="later", at=T0 + timedelta(seconds=5), by="u"))
    assert outcome is MergeOutcome.DELETED and after == deleted


def test_earlier_edit_arriving_late_is_superseded() -> None:
    state, _ = merge(MessageState(body="v0"), Edit(body="v2", at=T0 + timedelta(seconds=2), by="u"))
    after, outcome = merge(state, Edit(body="v1", at=T0 + timedelta(seconds=1), by="u"))
    assert outcome is MergeOutcome.SUPERSEDED and after.body == "v2"


def test_equal_timestamps_go_to_the_greater_editor_id() -> None:
    a = Edit(body="from a", at=T0, by="a")
    b = Edit(body="from b", at=T0, by="b")
    one, _ = merge(merge(MessageState(body="x"), a)[0], b)
    two, _ = merge(merge(MessageState(body="x"), b)[0], a)
    assert one == two and one.body == "from b" and one.edited_by == "b"


def test_second_delete_keeps_the_first() -> None:
    state, _ = merge(MessageState(body="x"), Delete(at=T0, by="m1"))
    after, outcome = merge(state, Delete(at=T0 + timedelta(seconds=1), by="m2"))
    assert outcome is MergeOutcome.ALREADY_DELETED and after.deleted_by == "m1"


def test_edit_refusals() -> None:
    ok = {"editor_id": "u", "sender_id": "u", "created_at": T0, "deleted": False,
          "window": timedelta(minutes=5)}
    assert edit_refusal(**ok, now=T0 + timedelta(minutes=5)) is None
    assert edit_refusal(**ok, now=T0 + timedelta(minutes=5, microseconds=1)) is Refusal.EDIT_WINDOW_CLOSED
    assert edit_refusal(**{**ok, "editor_id": "v"}, now=T0) is Refusal.NOT_SENDER
    assert edit_refusal(**{**ok, "deleted": True}, now=T0) is Refusal.MESSAGE_DELETED


def test_delete_permissions() -> None:
    assert delete_refusal(actor_id="u", actor_is_staff=False, sender_id="u", seller_id="s") is None
    assert delete_refusal(actor_id="s", actor_is_staff=False, sender_id="u", seller_id="s") is None
    assert delete_refusal(actor_id="m", actor_is_staff=True, sender_id="u", seller_id="s") is None
    assert (
        delete_refusal(actor_id="v", actor_is_staff=False, sender_id="u", seller_id="s")
        is Refusal.NOT_MODERATOR
    )


def test_active_block_prefers_ban_and_ignores_expired() -> None:
    later = T0 + timedelta(minutes=10)
    mute = Sanction(kind="mute", until=later, reason="spam")
    ban = Sanction(kind="ban", until=None, reason="abuse")
    expired = Sanction(kind="ban", until=T0, reason="old")
    assert active_block([], T0) is None
    assert active_block([expired], T0) is None
    block = active_block([mute, expired], T0)
    assert block is not None and (block.kind, block.until, block.reason) == ("mute", later, "spam")
    block = active_block([mute, ban], T0)
    assert block is not None and (block.kind, block.until) == ("ban", None)
    assert active_block([mute], later) is None


def test_slow_mode_wait() -> None:
    assert slow_mode_wait(None, T0, 30) == 0
    assert slow_mode_wait(T0, T0 + timedelta(seconds=10), 0) == 0
    assert slow_mode_wait(T0, T0 + timedelta(seconds=10), 30) == 20
    assert slow_mode_wait(T0, T0 + timedelta(seconds=31), 30) == 0


def test_retry_after_rounds_up() -> None:
    assert retry_after_header(0.001) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"


def test_token_bucket_burst_then_refill() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    tat = None
    for _ in range(3):
        allowed, tat, _ = bucket.take(tat, 100.0)
        assert allowed
    allowed, same, retry = bucket.take(tat, 100.0)
    assert not allowed and same == tat and retry == pytest.approx(0.5)
    allowed, tat, _ = bucket.take(tat, 100.5)
    assert allowed
