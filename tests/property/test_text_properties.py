"""Property: the text rule either refuses a string or returns one with no forbidden code point,
something visible, in NFC, that the rule returns unchanged; visible text survives it."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from onair.domain.text import (
    BIDI_CONTROLS,
    BLANK_LOOKALIKES,
    DEFAULT_IGNORABLE,
    TextKind,
    TextRejected,
    clean_text,
)

LOADED_MACHINE = settings(deadline=None)

FORBIDDEN = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{BIDI_CONTROLS}\ud800-\udfff]")
INVISIBLE = re.compile(f"[\\s{DEFAULT_IGNORABLE}{BLANK_LOOKALIKES}]")

tricky = st.sampled_from([
    "a", "e", "\u0301", " ", "\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u3000",
    "\u200b", "\u200d", "\u200e", "\u202e", "\u2066", "\u2800", "\u3164", "\ufe0f", "\ufeff",
    "\U000e0041", "\ud800", "\u1100", "\u1161", "\U0001F600", "<", "\u2000",
])
any_text = st.one_of(st.text(st.characters(codec=None), max_size=60),
                     st.text(tricky, max_size=40))
kinds = st.sampled_from(list(TextKind))


@settings(LOADED_MACHINE, max_examples=500)
@given(raw=any_text, kind=kinds, max_chars=st.none() | st.integers(1, 80))
def test_refused_or_clean(raw: str, kind: TextKind, max_chars: int | None) -> None:
    try:
        text = clean_text(raw, kind, max_chars=max_chars)
    except TextRejected as rejected:
        assert rejected.reason in {"empty", "too-long", "invalid-unicode", "forbidden-character"}
        if rejected.reason == "invalid-unicode":
            assert re.search("[\ud800-\udfff]", raw)
        return
    assert FORBIDDEN.search(text) is None
    text.encode("utf-8")  # storable anywhere, PostgreSQL included
    assert text and INVISIBLE.sub("", text)  # something visible
    assert max_chars is None or len(text) <= max_chars
    assert clean_text(text, kind, max_chars=max_chars) == text  # a fixed point
    if kind is TextKind.ID:
        assert text == raw and not INVISIBLE.search(text)
    else:
        assert unicodedata.is_normalized("NFC", text) and text == text.strip()
    if kind is TextKind.LINE:
        assert "  " not in text and not re.search("[\t\n\r]", text)


visible = st.characters(exclude_categories=("Cc", "Cs", "Cf", "Zs", "Zl", "Zp", "Mn", "Me", "Co"))


@LOADED_MACHINE
@given(raw=st.text(visible, min_size=1, max_size=40).filter(lambda t: INVISIBLE.sub("", t)))
def test_visible_text_survives(raw: str) -> None:
    """Text of visible characters (no marks or spacing to fold) is kept as sent, up to NFC."""
    nfc = unicodedata.normalize("NFC", raw)
    assert clean_text(raw, TextKind.LINE) == " ".join(nfc.split())
    assert clean_text(raw, TextKind.MULTILINE) == nfc.strip()


def reference(raw: str, kind: TextKind) -> str | None:
    """The rule written plainly, without the ASCII shortcut; None for a refusal."""
    if FORBIDDEN.search(raw) or (kind is TextKind.ID and (not raw or INVISIBLE.search(raw))):
        return None
    if kind is TextKind.ID:
        return raw
    text = unicodedata.normalize("NFC", raw.replace("\r\n", "\n").replace("\r", "\n"))
    text = " ".join(text.split()) if kind is TextKind.LINE else text.strip()
    return text if INVISIBLE.sub("", text) else None


@LOADED_MACHINE
@given(raw=st.text(st.characters(max_codepoint=0x7F), max_size=60), kind=kinds)
def test_ascii_shortcut_agrees_with_the_general_rule(raw: str, kind: TextKind) -> None:
    """ASCII skips NFC and the visibility scan; the verdict must be the plain rule's."""
    try:
        got: str | None = clean_text(raw, kind)
    except TextRejected:
        got = None
    assert got == reference(raw, kind)
