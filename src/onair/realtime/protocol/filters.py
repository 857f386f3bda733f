"""postgres_changes filters: ``column=operator.value`` (spec §6.3).

Operators: ``eq, neq, lt, lte, gt, gte, in, like, ilike, is, match, imatch, isdistinct``, each
negatable with ``not.``; conditions joined by commas are ANDed; commas inside ``(...)`` or double
quotes do not split; values may be PostgREST-quoted (``name=eq."a,b"``). An empty filter matches
everything. Parse errors carry the Elixir server's messages so clients show the same text.

Values in change records are JSON values; a filter value is text. Comparison follows the record's
type: numbers compare numerically, booleans against ``true/false``, everything else as text
(ISO timestamps and uuid7 ids order correctly as text).

Supabase evaluates filters in PostgreSQL; we evaluate them in-process on the event loop for every
matching row, so a client must not control the cost (issue 10). Patterns (``match``/``imatch``
regexes, ``like``/``ilike`` translated to regexes) run on RE2, whose matching is linear in the
text, and each compiled program is capped in size and memory; everything else is bounded by
:class:`FilterLimits`, checked once at join, and the total :attr:`Filter.cost` of one connection's
bindings is capped (each binding on each channel is evaluated separately). Whatever a record holds, :meth:`Filter.matches`
answers True or False and never raises.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Final

import re2

from onair.realtime.protocol.errors import RealtimeError

OPERATORS: Final = frozenset(
    {"eq", "neq", "lt", "lte", "gt", "gte", "in", "like", "ilike", "is", "match", "imatch", "isdistinct"}
)
PATTERN_OPERATORS: Final = frozenset({"like", "ilike", "match", "imatch"})
_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class FilterLimits:
    """What the postgres_changes bindings of one join may cost; defaults = the settings'."""

    max_bindings: int = 10  # postgres_changes bindings per join
    max_cost_per_connection: int = 2000  # Σ Filter.cost over a connection's accepted bindings
    max_chars: int = 4096
    max_conditions: int = 10
    max_in_values: int = 100
    max_pattern_chars: int = 256
    max_regex_size: int = 500  # RE2 program size: the matching cost per character of text
    regex_max_mem: int = 262_144  # bytes RE2 may use for one compiled pattern (program + DFA cache)


DEFAULT_LIMITS: Final = FilterLimits()


class FilterError(RealtimeError):
    """The filter string does not parse or exceeds a limit; ``message`` is what the client sees."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Pattern:
    """A compiled RE2 pattern; ``search`` (regex) or ``fullmatch`` (LIKE) semantics."""

    __slots__ = ("anchored", "regex")

    def __init__(self, regex: Any, anchored: bool) -> None:
        self.regex = regex
        self.anchored = anchored

    def test(self, text: str) -> bool:
        find = self.regex.fullmatch if self.anchored else self.regex.search
        try:
            return find(text) is not None
        except UnicodeEncodeError:  # lone surrogates: RE2 works on UTF-8
            return find(text.encode("utf-8", "replace").decode("utf-8")) is not None


@dataclass(frozen=True, slots=True)
class Condition:
    column: str
    op: str
    value: str | tuple[str, ...]
    negate: bool = False
    pattern: _Pattern | None = field(default=None, compare=False, repr=False)

    @property
    def cost(self) -> int:
        """Work per evaluation, in units of about one comparison: a pattern's RE2 program size
        (its cost per character of text), an ``in`` list's length, else 1."""
        if self.pattern is not None:
            return max(20, int(self.pattern.regex.programsize))  # 20: the fixed cost of a call
        return max(1, len(self.value)) if isinstance(self.value, tuple) else 1

    def matches(self, record: dict[str, Any]) -> bool:
        actual = record.get(self.column, _MISSING)
        if actual is _MISSING:
            return False
        result = _apply(self, actual)
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

    @property
    def cost(self) -> int:
        return sum(c.cost for c in self.conditions)

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


def like_to_regex(pattern: str) -> str:
    """LIKE → RE2 syntax, for a full match: ``%`` (and PostgREST's ``*``) any run, ``_`` one
    character, everything else literal. Runs of ``%`` collapse, keeping the program small."""
    out: list[str] = []
    for ch in pattern:
        if ch in "%*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re2.escape(ch))
    return "".join(out)


@functools.lru_cache(maxsize=512)  # viewers of one stream hold the same filters: compile once
def _compile(source: str, ignore_case: bool, dot_nl: bool, max_mem: int) -> Any:
    options = re2.Options()
    options.max_mem = max_mem
    options.case_sensitive = not ignore_case
    options.dot_nl = dot_nl
    options.never_capture = True
    options.log_errors = False
    return re2.compile(source, options)


def _pattern(op: str, value: str, limits: FilterLimits, shown: str) -> _Pattern:
    if len(value) > limits.max_pattern_chars:
        raise FilterError(f"{shown}: pattern longer than {limits.max_pattern_chars} characters")
    like = op in ("like", "ilike")
    source = like_to_regex(value) if like else value
    try:
        regex = _compile(source, op in ("ilike", "imatch"), like, limits.regex_max_mem)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if "too large" in detail:
            raise FilterError(f"{shown}: pattern too complex") from None
        raise FilterError(f"{shown}: unsupported regular expression ({detail})") from None
    except (UnicodeError, TypeError, ValueError):
        raise FilterError(f"{shown}: unsupported regular expression") from None
    if regex.programsize > limits.max_regex_size:
        raise FilterError(f"{shown}: pattern too complex")
    return _Pattern(regex, anchored=like)


def _parse_condition(text: str, limits: FilterLimits) -> Condition:
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
        if len(items) > limits.max_in_values:
            raise FilterError(f"`in` filter may list at most {limits.max_in_values} values")
        return Condition(column, op, items, negate)
    if op == "is" and value.lower() not in ("null", "true", "false", "unknown"):
        raise FilterError(f"Error parsing `filter` params: {_shown(text)}")
    value = _unquote(value)
    if op in PATTERN_OPERATORS:
        shown = f"Error parsing `filter` params: {_shown(text)}"
        return Condition(column, op, value, negate, _pattern(op, value, limits, shown))
    return Condition(column, op, value, negate)


def _shown(text: str) -> str:
    return "[" + ", ".join(f'"{p}"' for p in re.split(r"[=.]", text, maxsplit=2)) + "]"


def parse_filter(text: Any, limits: FilterLimits = DEFAULT_LIMITS) -> Filter:
    """Parse a filter string; ``None``/blank means no filter. Limits are checked before any work
    proportional to the input is done."""
    if text is None:
        return Filter()
    if not isinstance(text, str):
        raise FilterError('Error parsing `filter` params: ["undefined"]')
    if len(text) > limits.max_chars:
        raise FilterError(f"filter longer than {limits.max_chars} characters")
    if not text.strip():
        return Filter()
    parts = _split_top_level(text)
    if len(parts) > limits.max_conditions:
        raise FilterError(f"filter may have at most {limits.max_conditions} conditions")
    if any(not p.strip() for p in parts):
        raise FilterError("filter must not contain empty segments (check for extra commas)")
    return Filter(tuple(_parse_condition(p.strip(), limits) for p in parts))


def _coerce(actual: Any, value: str) -> Any:
    """The filter value converted to the record value's type, or None if it does not convert."""
    if isinstance(actual, bool):
        low = value.lower()
        return True if low in ("true", "t") else False if low in ("false", "f") else None
    if isinstance(actual, int):
        try:
            return int(value)
        except ValueError:  # also past Python's 4,300-digit limit: then compare as a float
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
    try:
        return str(actual)
    except ValueError:  # an int past Python's digit limit for str()
        return ""


def _apply(cond: Condition, actual: Any) -> bool:
    op, value = cond.op, cond.value
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
    if cond.pattern is not None:
        return cond.pattern.test(_text(actual))
    other = _coerce(actual, value)
    if other is None:
        return op == "neq"
    if isinstance(actual, (dict, list)):
        return op == "neq"
    if op == "eq":
        return bool(actual == other)
    if op == "neq":
        return bool(actual != other)
    try:
        if op == "lt":
            return bool(actual < other)
        if op == "lte":
            return bool(actual <= other)
        if op == "gt":
            return bool(actual > other)
        return bool(actual >= other)  # gte
    except TypeError:  # a record value of a type that does not order (never from our tables)
        return False
