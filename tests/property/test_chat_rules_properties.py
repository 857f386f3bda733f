"""Properties of the pure chat rules: body normalization, edit/delete merge, token bucket."""

import itertools
import unicodedata
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onair.domain.chat import (
    BodyRejected,
    Delete,
    Edit,
    MessageState,
    Sanction,
    TokenBucket,
    active_block,
    merge,
    normalize_body,
)

# The suite shares a loaded CI machine: a descheduled process must not fail a pure property.
settings.register_profile(
    "chat-rules", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
LOADED_MACHINE = settings.get_profile("chat-rules")

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# All of Unicode including surrogates, controls, combining marks and unusual whitespace.
any_text = st.text(alphabet=st.characters(codec=None), max_size=60)
tricky_text = st.text(
    alphabet=st.sampled_from(
        ["a", "e", "\u0301", "\u0327", " ", "\n", "\r", "\t", "\x00", "\x85", "\u2028", "\u3000",
         "\u1100", "\u1161", "\u11a8", "\ud800", "<", "'", "😀", "\ufeff", "\u200b"]
    ),
    max_size=40,
)


@settings(LOADED_MACHINE, max_examples=400)
@given(raw=st.one_of(any_text, tricky_text), max_chars=st.integers(1, 80))
def test_normalized_body_invariants(raw: str, max_chars: int) -> None:
    """Chat bodies: stored text is NFC, control-free (but for tabs and newlines), trimmed, 1..max,
    a fixed point."""
    try:
        body = normalize_body(raw, max_chars)
    except BodyRejected as rejected:
        assert rejected.reason in {"body-empty", "body-too-long", "body-invalid-unicode",
                                   "body-forbidden-character"}
        if rejected.reason == "body-invalid-unicode":
            assert any(0xD800 <= ord(c) <= 0xDFFF for c in raw)
        return
    assert 1 <= len(body) <= max_chars
    assert body == body.strip()
    assert unicodedata.is_normalized("NFC", body)
    assert all(c in "\t\n" or unicodedata.category(c) != "Cc" for c in body)
    assert not any("\u202a" <= c <= "\u202e" or "\u2066" <= c <= "\u2069" for c in body)
    body.encode("utf-8")  # always storable
    assert normalize_body(body, max_chars) == body


@settings(LOADED_MACHINE)
@given(raw=st.text(alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Mc", "Me")), min_size=1, max_size=30))
def test_plain_text_is_kept_verbatim(raw: str) -> None:
    """Text without controls, marks or edge whitespace is stored exactly as sent (modulo NFC)."""
    assert normalize_body(raw, 100) == unicodedata.normalize("NFC", raw).strip()


editors = st.sampled_from(["alice", "bob", "carol"])
offsets = st.integers(0, 5).map(lambda s: T0 + timedelta(seconds=s))
changes = st.lists(
    st.one_of(
        st.builds(Edit, body=st.sampled_from(["x", "y", "z"]), at=offsets, by=editors),
        st.builds(Delete, at=offsets, by=editors),
    ),
    max_size=5,
)


def expected_state(original: str, applied: list[Edit | Delete]) -> MessageState:
    """The rule stated declaratively: delete wins; else the greatest (time, editor, body) edit."""
    deletes = [c for c in applied if isinstance(c, Delete)]
    if deletes:
        first = min(deletes, key=lambda d: (d.at, d.by))
        return MessageState(body="", deleted_at=first.at, deleted_by=first.by)
    edits = [c for c in applied if isinstance(c, Edit)]
    if not edits:
        return MessageState(body=original)
    last = max(edits, key=lambda e: (e.at, e.by, e.body))
    return MessageState(body=last.body, edited_at=last.at, edited_by=last.by)


@settings(LOADED_MACHINE, max_examples=300)
@given(changes=changes)
def test_merge_is_order_independent(changes: list[Edit | Delete]) -> None:
    """Property 13: chat data persistence and consistency — concurrent edits/deletes resolve
    deterministically (delete wins, later server timestamp wins, ties by editor id) whatever the
    order they are applied in."""
    results = set()
    for order in itertools.permutations(changes):
        state = MessageState(body="original")
        for change in order:
            state, _ = merge(state, change)
        results.add(state)
    assert results == {expected_state("original", changes)}


@settings(LOADED_MACHINE)
@given(changes=changes)
def test_merge_is_idempotent(changes: list[Edit | Delete]) -> None:
    """Re-applying a change that already counted (a retried request) changes nothing."""
    state = MessageState(body="original")
    for change in changes:
        state, _ = merge(state, change)
    for change in changes:
        again, _ = merge(state, change)
        assert again == state


@settings(LOADED_MACHINE, max_examples=300)
@given(
    rate=st.sampled_from([0.5, 1.0, 3.0, 10.0]),
    burst=st.integers(1, 6),
    gaps=st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=60),
)
def test_token_bucket_never_admits_more_than_burst_plus_refill(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """In every time window [a, b] at most burst + rate·(b − a) requests are admitted, and a refused
    request is admitted once its retry-after has passed."""
    bucket = TokenBucket(rate=rate, burst=burst)
    now, tat, admitted = 1000.0, None, []
    for gap in gaps:
        now += gap
        allowed, new_tat, retry = bucket.take(tat, now)
        if allowed:
            admitted.append(now)
            tat = new_tat
        else:
            assert retry > 0 and new_tat == tat
            assert bucket.take(tat, now + retry)[0]
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            assert j - i + 1 <= burst + rate * (admitted[j] - start) + 1e-6


@settings(LOADED_MACHINE)
@given(rate=st.sampled_from([1.0, 5.0]), burst=st.integers(1, 5), n=st.integers(1, 50))
def test_token_bucket_admits_a_steady_sender(rate: float, burst: int, n: int) -> None:
    """A sender who stays at the refill rate is never refused."""
    bucket = TokenBucket(rate=rate, burst=burst)
    tat = None
    for i in range(n):
        allowed, tat, _ = bucket.take(tat, 50.0 + i / rate)
        assert allowed


sanctions = st.lists(
    st.builds(
        Sanction,
        kind=st.sampled_from(["mute", "ban"]),
        until=st.one_of(st.none(), offsets),
        reason=st.sampled_from([None, "spam"]),
    ),
    max_size=4,
)


@settings(LOADED_MACHINE)
@given(sanctions=sanctions, now=offsets)
def test_active_block_is_the_strongest_live_sanction(sanctions: list[Sanction], now: datetime) -> None:
    """Blocked iff some sanction is still running; a running ban is always reported over a mute."""
    block = active_block(sanctions, now)
    live = [s for s in sanctions if s.until is None or s.until > now]
    assert (block is None) == (not live)
    if block is not None:
        assert block.kind == ("ban" if any(s.kind == "ban" for s in live) else "mute")
        same_kind = [s for s in live if s.kind == block.kind]
        if any(s.until is None for s in same_kind):
            assert block.until is None
        else:
            assert block.until == max(s.until for s in same_kind if s.until is not None)


@settings(LOADED_MACHINE)
@given(raw=st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=60))
def test_ascii_bodies_follow_the_plain_rule(raw: str) -> None:
    """ASCII bodies: a control other than tab and line breaks is refused (never dropped);
    otherwise the body is the trimmed text with line breaks unified."""
    general = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    try:
        assert normalize_body(raw, 100) == general
    except BodyRejected as rejected:
        if rejected.reason == "body-forbidden-character":
            assert any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in raw)
        else:
            assert rejected.reason in {"body-empty", "body-too-long"}
            assert (not general) or len(general) > 100
