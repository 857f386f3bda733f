"""The one rule for every string a client sends: what is refused, what is normalised.

Three kinds of field:

* ``LINE`` — display text on one line (stream title, end reason, sanction reason): Unicode NFC,
  runs of whitespace (tab and line breaks included) folded to one space, trimmed.
* ``MULTILINE`` — display text that may span lines (chat bodies): NFC, ``\\r\\n`` and ``\\r``
  become ``\\n``, tabs and line breaks kept, trimmed.
* ``ID`` — an opaque identifier (user id, stream id, message id, channel): compared byte for byte
  with what a token or the database holds, so it is never rewritten, only checked.

Refused everywhere (never silently removed, so what is stored is what was sent, or nothing):
unpaired UTF-16 surrogates (JSON ``"\\ud800"`` decodes to one; UTF-8 and PostgreSQL cannot hold
it), control characters (Cc: NUL, C0, DEL, C1) except the tab/line breaks the kind allows, and the
bidirectional embedding, override and isolate controls U+202A–U+202E and U+2066–U+2069 (they
reorder whatever follows them on screen: "Trojan Source", CVE-2021-42574), and tag characters
(U+E0000–U+E007F) outside an emoji flag sequence (🏴 + up to 8 tags + CANCEL TAG, e.g. the
Scotland flag): anywhere else they only hide ASCII text from readers ("ASCII smuggling", aimed
at language-model moderators). The directional *marks*
LRM/RLM/ALM stay allowed in display text: Arabic and Hebrew writers need them to place
punctuation, and they cannot reorder anything beyond their neighbours.

Display text must show something: text made only of whitespace and invisible characters
(Unicode's Default_Ignorable_Code_Point set — zero-width space/joiners, word joiner, BOM, soft
hyphen, variation selectors, tag characters, Hangul fillers — plus the blank braille pattern
U+2800) is refused as empty. Inside visible text those characters stay: emoji sequences need ZWJ
and variation selectors, Persian needs ZWNJ. Identifiers allow no whitespace and no invisible
character at all: two ids that look the same must be the same.

Why NFC and not NFKC: NFC only merges canonically equivalent spellings (``e`` + U+0301 and
``é``), so equal-looking text compares equal and nothing a writer chose is lost; NFKC also folds
compatibility characters (``ﬁ``→``fi``, ``²``→``2``, full-width letters), which changes meaning and
is meant for identifier matching, not for text people read. Identifiers are not normalised at
all: they must match the ``sub`` of a token exactly.

Every check is one linear scan with a character-class regex (no backtracking), so the cost is
proportional to the input, whatever it contains.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum


class TextKind(Enum):
    LINE = "line"
    MULTILINE = "multiline"
    ID = "id"


class TextRejected(ValueError):
    """``reason`` is a stable slug: empty, too-long, invalid-unicode or forbidden-character."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# Default_Ignorable_Code_Point, DerivedCoreProperties.txt (Unicode 15.1; the set is stable:
# new ignorables are only ever assigned inside these ranges).
DEFAULT_IGNORABLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
BLANK_LOOKALIKES = "\u2800"  # BRAILLE PATTERN BLANK renders as a space but is a symbol (So)
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
SURROGATES = "\ud800-\udfff"
_CONTROLS_BUT_TAB_AND_LINE_BREAKS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"

_FORBIDDEN = {
    TextKind.LINE: re.compile(f"[{_CONTROLS_BUT_TAB_AND_LINE_BREAKS}{BIDI_CONTROLS}{SURROGATES}]"),
    TextKind.MULTILINE: re.compile(
        f"[{_CONTROLS_BUT_TAB_AND_LINE_BREAKS}{BIDI_CONTROLS}{SURROGATES}]"),
    TextKind.ID: re.compile(
        f"[\\s\x00-\x1f\x7f-\x9f{DEFAULT_IGNORABLE}{BLANK_LOOKALIKES}{SURROGATES}]"),
}
_VISIBLE = re.compile(f"[^\\s{DEFAULT_IGNORABLE}{BLANK_LOOKALIKES}]")
_TAG = re.compile("[\U000e0000-\U000e007f]")
_FLAG_SEQUENCE = re.compile("\U0001f3f4[\U000e0020-\U000e007e]{1,8}\U000e007f")


def clean_text(raw: str, kind: TextKind = TextKind.LINE, *, max_chars: int | None = None) -> str:
    """What to store for ``raw`` as a field of ``kind``, or raise :class:`TextRejected`.

    The result is a fixed point: cleaning it again returns it unchanged. ``max_chars`` counts
    code points of the result (after normalisation).
    """
    if not isinstance(raw, str):
        raise TextRejected("not-text", "must be a string")
    bad = _FORBIDDEN[kind].search(raw)
    if bad is not None:
        raise _refusal(bad.group())
    if kind is not TextKind.ID and not raw.isascii() and _TAG.search(raw) is not None:
        stray = _TAG.search(_FLAG_SEQUENCE.sub("", raw))
        if stray is not None:
            raise _refusal(stray.group())
    if kind is TextKind.ID:
        text = raw
        if not text:
            raise TextRejected("empty", "must not be empty")
    else:
        if kind is TextKind.LINE:
            text = " ".join(raw.split())
        else:
            text = raw.replace("\r\n", "\n").replace("\r", "\n")
        if not text.isascii():  # ASCII is NFC already, and any non-space ASCII is visible
            text = unicodedata.normalize("NFC", text)
        text = text.strip()
        if not text or (not text.isascii() and _VISIBLE.search(text) is None):
            raise TextRejected("empty", "has no visible characters (only whitespace or "
                               "invisible characters)")
    if max_chars is not None and len(text) > max_chars:
        raise TextRejected("too-long",
                           f"has {len(text)} characters, at most {max_chars} are allowed")
    return text


def _refusal(char: str) -> TextRejected:
    code = f"U+{ord(char):04X}"
    if "\ud800" <= char <= "\udfff":
        return TextRejected("invalid-unicode", f"contains an unpaired UTF-16 surrogate ({code})")
    category = unicodedata.category(char)
    if category == "Cc":
        what = "a control character"
    elif re.match(f"[{BIDI_CONTROLS}]", char):
        what = "a bidirectional formatting control"
    elif char.isspace():
        what = "whitespace"
    elif _TAG.match(char):
        what = "a tag character outside an emoji flag"
    else:
        what = "an invisible character"
    name = unicodedata.name(char, "")
    return TextRejected("forbidden-character",
                        f"contains {what}, {code}{f' {name}' if name else ''}, which is not allowed")
