"""Derives the fold table of ``event_names.json`` from Python's Unicode database.

Not used at run time: ``python -m onair.realtime.protocol.event_names_table`` rewrites the
``ignorable`` and ``fold`` entries of the JSON file (keeping its reserved names), and a test checks
that the committed file still covers everything this interpreter derives. The browser and the
server read the file, not this module, so both apply the very same table whatever Unicode version
their runtime has.

The derivation over-approximates on purpose: a code point folds to ASCII when any of NFKD,
casefold, lower/upper casing (repeated, with combining marks dropped) turns it into letters,
digits or the punctuation of reserved names. That covers what clients do when they compare names
(``toLowerCase``/``toLocaleLowerCase`` in every locale: Turkish/Azeri dotted and dotless i,
Lithuanian dots, the Kelvin and Angstrom signs, long s, ligatures, fullwidth and mathematical
letters). Ignorable code points (combining marks, format characters, Hangul fillers) fold to
nothing.
"""

from __future__ import annotations

import json
import string
import sys
import unicodedata
from pathlib import Path
from typing import Any

IGNORABLE_CATEGORIES = frozenset({"Mn", "Me", "Cf"})
# Default_Ignorable_Code_Point letters: they render as nothing but are category Lo.
INVISIBLE_LETTERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0})
BASE_ALPHABET = frozenset(string.ascii_lowercase + string.digits + "_:")
TABLE_PATH = Path(__file__).resolve().parents[2] / "web" / "static" / "client" / "event_names.json"


def is_ignorable(cp: int) -> bool:
    return cp in INVISIBLE_LETTERS or unicodedata.category(chr(cp)) in IGNORABLE_CATEGORIES


def _strip(text: str) -> str:
    return "".join(c for c in text if not is_ignorable(ord(c)))


def _fold_once(text: str) -> str:
    return _strip(unicodedata.normalize("NFKD", text)).casefold()


def derive(ch: str) -> set[str]:
    """Every ASCII spelling ``ch`` may turn into under normalisation and casing."""
    if not unicodedata.decomposition(ch) and ch.lower() == ch.upper() == ch.casefold() == ch:
        return set()  # most of Unicode: nothing to fold
    seen: set[str] = set()
    todo = [ch, ch.lower(), ch.upper()]
    while todo:
        text = todo.pop()
        if text in seen or len(seen) > 32:
            continue
        seen.add(text)
        todo += [_fold_once(text), text.lower(), text.upper(), _strip(text)]
    return {s.lower() for s in seen if s.isascii() and s}


def derive_table(alphabet: frozenset[str]) -> tuple[list[list[int]], dict[str, str]]:
    """(ignorable code point ranges, {ASCII target: the code points folding to it})."""
    ignorable: list[list[int]] = []
    fold: dict[str, list[str]] = {}
    for cp in range(0x80, sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if is_ignorable(cp):
            if ignorable and ignorable[-1][1] == cp - 1:
                ignorable[-1][1] = cp
            else:
                ignorable.append([cp, cp])
            continue
        targets = sorted(t for t in derive(chr(cp)) if set(t) <= alphabet)
        if targets:
            # shortest first: one code point gets one target (several only for odd ligatures)
            fold.setdefault(min(targets, key=lambda t: (len(t), t)), []).append(chr(cp))
    return ignorable, {t: "".join(chars) for t, chars in sorted(fold.items())}


def alphabet_of(data: dict[str, Any]) -> frozenset[str]:
    names = [*data["server_only"], *data["host_only_prefixes"]]
    return BASE_ALPHABET | frozenset("".join(names))


def regenerate(path: Path = TABLE_PATH) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["ignorable"], data["fold"] = derive_table(alphabet_of(data))
    data["unicode_version"] = unicodedata.unidata_version
    path.write_text(dumps(data), encoding="utf-8")


def dumps(data: dict[str, Any]) -> str:
    """One key per line, the fold table one target per line: diffs stay readable."""
    def compact(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    lines = []
    for key, value in data.items():
        if key == "fold":
            rows = ",\n".join(f"  {compact(t)}: {compact(chars)}" for t, chars in value.items())
            lines.append(f' "fold": {{\n{rows}\n }}')
        else:
            lines.append(f" {compact(key)}: {compact(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


if __name__ == "__main__":
    regenerate()
