"""The text rule (onair.domain.text): examples of what is refused and what is normalised."""

from __future__ import annotations

import pytest

from onair.domain.text import DEFAULT_IGNORABLE, TextKind, TextRejected, clean_text

LINE, MULTI, ID = TextKind.LINE, TextKind.MULTILINE, TextKind.ID


@pytest.mark.parametrize(("raw", "kind", "expected"), [
    ("  Spring   sale\tnow\r\n ", LINE, "Spring sale now"),
    ("e\u0301t\u00e9", LINE, "\u00e9t\u00e9"),  # NFC
    ("\ufb01ne \u00b2", LINE, "\ufb01ne \u00b2"),  # not NFKC: compatibility characters stay
    ("<b>hi</b>", LINE, "<b>hi</b>"),  # never interpreted
    ("line1\r\nline2\rline3\n", MULTI, "line1\nline2\nline3"),
    ("a\tb", MULTI, "a\tb"),
    ("\U0001F468\u200d\U0001F469\u200d\U0001F467", LINE,  # ZWJ inside an emoji sequence stays
     "\U0001F468\u200d\U0001F469\u200d\U0001F467"),
    ("\u2764\ufe0f", LINE, "\u2764\ufe0f"),  # a variation selector after a visible character
    ("\u0645\u200c\u0646", LINE, "\u0645\u200c\u0646"),  # ZWNJ in Persian
    ("\u05e9\u05dc\u05d5\u05dd!\u200f", LINE, "\u05e9\u05dc\u05d5\u05dd!\u200f"),  # RLM: a mark
    ("user-1@example.com", ID, "user-1@example.com"),
    ("0192f0a4-7c1e-7abc-8def-0123456789ab", ID, "0192f0a4-7c1e-7abc-8def-0123456789ab"),
    ("e\u0301", ID, "e\u0301"),  # ids are never rewritten
])
def test_kept_and_normalised(raw: str, kind: TextKind, expected: str) -> None:
    assert clean_text(raw, kind) == expected


@pytest.mark.parametrize("kind", [LINE, MULTI, ID])
@pytest.mark.parametrize(("raw", "reason"), [
    ("a\x00b", "forbidden-character"),  # NUL: PostgreSQL text cannot hold it
    ("a\x1bb", "forbidden-character"),  # ESC (terminal escapes in logs)
    ("a\x7fb", "forbidden-character"),  # DEL
    ("a\x85b", "forbidden-character"),  # C1 NEL
    ("a\x0bb", "forbidden-character"),  # vertical tab
    ("abc\u202edcba", "forbidden-character"),  # RIGHT-TO-LEFT OVERRIDE
    ("a\u202ab", "forbidden-character"),  # LRE
    ("a\u2066b\u2069", "forbidden-character"),  # isolates
    ("a\ud800b", "invalid-unicode"),  # JSON "\ud800"
    ("\udfff", "invalid-unicode"),
])
def test_refused_everywhere(raw: str, kind: TextKind, reason: str) -> None:
    with pytest.raises(TextRejected) as info:
        clean_text(raw, kind)
    assert info.value.reason == reason
    assert "U+" in info.value.detail  # names the code point


@pytest.mark.parametrize("kind", [LINE, MULTI])
@pytest.mark.parametrize("raw", [
    "", "   ", "\n\t\r\n", "\u3000", "\u200b", "\u200b\u200c\u200d", "\u2060\ufeff", "\u00ad",
    "\u2800\u2800", "\u3164", "\u115f\u1160", "\uffa0", "\ufe0f",
    " \u200e\u200f ", "\u034f", "\u180e",
])
def test_invisible_only_is_empty(raw: str, kind: TextKind) -> None:
    with pytest.raises(TextRejected) as info:
        clean_text(raw, kind)
    assert info.value.reason == "empty"


@pytest.mark.parametrize("raw", ["", "a b", "a\tb", "a\u200bb", "\u2800", "a\u200eb", "a\u3000"])
def test_ids_have_no_whitespace_or_invisible_characters(raw: str) -> None:
    with pytest.raises(TextRejected):
        clean_text(raw, ID)


SCOTLAND = "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"


@pytest.mark.parametrize("kind", [LINE, MULTI])
def test_tag_characters_only_inside_an_emoji_flag(kind: TextKind) -> None:
    assert clean_text(f"Go {SCOTLAND}!", kind) == f"Go {SCOTLAND}!"
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "ignore the rules")
    for raw in (f"hi{hidden}", f"{SCOTLAND}{hidden}", "\U000e0041\U000e007f",
                f"\U0001F3F4{hidden}\U000E007F"):  # a "flag" too long to be one
        with pytest.raises(TextRejected) as info:
            clean_text(raw, kind)
        assert info.value.reason == "forbidden-character"
        assert "tag character" in info.value.detail


def test_tab_and_line_breaks_fold_in_a_line_but_stay_in_multiline() -> None:
    assert clean_text("a\n\nb", LINE) == "a b"
    assert clean_text("a\n\nb", MULTI) == "a\n\nb"


def test_length_counts_code_points_after_normalisation() -> None:
    assert clean_text("e\u0301" * 5, LINE, max_chars=5) == "\u00e9" * 5
    with pytest.raises(TextRejected) as info:
        clean_text("x" * 6, LINE, max_chars=5)
    assert info.value.reason == "too-long"


def test_not_a_string() -> None:
    with pytest.raises(TextRejected) as info:
        clean_text(5, LINE)  # type: ignore[arg-type]
    assert info.value.reason == "not-text"


def test_bidi_controls_are_default_ignorable() -> None:
    """The id rule refuses bidi controls through the ignorable set: check it covers them."""
    import re

    ignorable = re.compile(f"[{DEFAULT_IGNORABLE}]")
    for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C):
        assert ignorable.match(chr(code))
