"""postgres_changes filters: ``column=operator.value`` (spec §6.3).

Operators: ``eq, neq, lt, lte, gt, gte, in, like, ilike, is, match, imatch, isdistinct``, each
negatable with ``not.``; conditions joined by commas are ANDed; commas inside ``(...)`` or double
quotes do not split; values may be PostgREST-quoted (``name=eq."a,b"``). An empty filter matches
everything. Parse errors carry the Elixir server's messages so clients show the same text.

Values in change records are JSON values; a filter value is text. Comparison follows the record's
type: numbers compare numerically, booleans against ``true/false``, everything else as text
(ISO timestamps and uuid7 ids order correctly as text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from onair.realtime.protocol.errors import RealtimeError

OPERATORS: Final = frozenset(
    {"eq", "neq", "lt", "lte", "gt", "gte", "in", "like", "ilike", "is", "match", "imatch", "isdistinct"}
)
_MISSING: Final = object()


class FilterError(RealtimeError):
    """The filter string does not parse; ``message`` is what the client sees."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Condition:
    column: str
    op: str
    value: str | tuple[str, ...]
    negate: bool = False

    def matches(self, record: dict[str, Any]) -> bool:
        actual = record.get(self.column, _MISSING)
        if actual is _MISSING:
            return False
        result = _apply(self.op, actual, self.value)
        return not result if self.negate else result


@dataclass(frozen=True, slots=True)
class Filter:
    conditions: tuple[Condition, ...] = ()

    def matches(self, record: dict[str, Any] | None) -> bool:
        if not self.conditions:
            return True
        if record is None:
            return False
        return all(c.matches(record) for c in self.conditions)

    def eq_key(self) -> tuple[str, str] | None:
        """The first plain ``col=eq.value`` condition: what the hub indexes on."""
        for c in self.conditions:
            if c.op == "eq" and not c.negate and isinstance(c.value, str):
                return c.column, c.value
        return None


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth, quoted, start = 0, False, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quoted:
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch == ",":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _parse_condition(text: str) -> Condition:
    column, sep, rest = text.partition("=")
    op, dot, value = rest.partition(".")
    if not sep or not column or not dot:
        raise FilterError(f"Error parsing `filter` params: {_shown(text)}")
    negate = False
    if op == "not":
        negate = True
        op, dot, value = value.partition(".")
        if not dot:
            raise FilterError(f"Error parsing `filter` params: {_shown(text)}")
    if op not in OPERATORS:
        raise FilterError(f'Error parsing `filter` params: ["{column}", "{op}"]')
    if op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise FilterError("`in` filter value must be wrapped by parentheses")
        items = tuple(_unquote(v.strip()) for v in _split_top_level(value[1:-1]) if v.strip())
        return Condition(column, op, items, negate)
    if op == "is" and value.lower() not in ("null", "true", "false", "unknown"):
        raise FilterError(f"Error parsing `filter` params: {_shown(text)}")
    if op in ("match", "imatch"):
        try:
            re.compile(_unquote(value))
        except re.error:
            raise FilterError(f"Error parsing `filter` params: {_shown(text)}") from None
    return Condition(column, op, _unquote(value), negate)


def _shown(text: str) -> str:
    return "[" + ", ".join(f'"{p}"' for p in re.split(r"[=.]", text, maxsplit=2)) + "]"


def parse_filter(text: str | None) -> Filter:
    """Parse a filter string; ``None``/blank means no filter."""
    if text is None or not text.strip():
        return Filter()
    if not isinstance(text, str):
        raise FilterError('Error parsing `filter` params: ["undefined"]')
    parts = _split_top_level(text)
    if any(not p.strip() for p in parts):
        raise FilterError("filter must not contain empty segments (check for extra commas)")
    return Filter(tuple(_parse_condition(p.strip()) for p in parts))


def _coerce(actual: Any, value: str) -> Any:
    """The filter value converted to the record value's type, or None if it does not convert."""
    if isinstance(actual, bool):
        low = value.lower()
        return True if low in ("true", "t") else False if low in ("false", "f") else None
    if isinstance(actual, int):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    if isinstance(actual, float):
        try:
            return float(value)
        except ValueError:
            return None
    return value


def _text(actual: Any) -> str:
    if isinstance(actual, bool):
        return "true" if actual else "false"
    return str(actual)


def _like(pattern: str, flags: int) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch in "%*" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), flags | re.DOTALL)


def _apply(op: str, actual: Any, value: str | tuple[str, ...]) -> bool:
    if op == "is":
        assert isinstance(value, str)
        low = value.lower()
        if low in ("null", "unknown"):
            return actual is None
        return actual is (low == "true")
    if op == "isdistinct":
        assert isinstance(value, str)
        if actual is None:
            return value.lower() != "null"
        other = _coerce(actual, value)
        return other is None or other != actual
    if actual is None:
        return False  # SQL: comparisons with NULL are never true
    if op == "in":
        assert isinstance(value, tuple)
        return any(_coerce(actual, v) == actual for v in value)
    assert isinstance(value, str)
    if op in ("like", "ilike", "match", "imatch"):
        text = _text(actual)
        if op in ("like", "ilike"):
            return _like(value, re.IGNORECASE if op == "ilike" else 0).fullmatch(text) is not None
        return re.search(value, text, re.IGNORECASE if op == "imatch" else 0) is not None
    other = _coerce(actual, value)
    if other is None:
        return op == "neq"
    if isinstance(actual, (dict, list)):
        return op == "neq"
    if op == "eq":
        return bool(actual == other)
    if op == "neq":
        return bool(actual != other)
    if op == "lt":
        return bool(actual < other)
    if op == "lte":
        return bool(actual <= other)
    if op == "gt":
        return bool(actual > other)
    return bool(actual >= other)  # gte
