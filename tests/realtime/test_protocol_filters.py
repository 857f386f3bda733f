from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onair.realtime.protocol.filters import Condition, Filter, FilterError, parse_filter

REC = {"id": 7, "stream_id": "018f-a", "price": 9.5, "title": "Red Shoes", "live": True, "note": None, "tags": ["a"]}

MATCHES: list[tuple[str, bool]] = [
    ("", True), ("id=eq.7", True), ("id=eq.8", False), ("id=neq.8", True), ("id=lt.8", True), ("id=lte.7", True),
    ("id=gt.7", False), ("id=gte.7", True), ("id=in.(1,7,9)", True), ("id=in.(1,2)", False), ("stream_id=eq.018f-a", True),
    ("stream_id=eq.018f-b", False), ("stream_id=in.(018f-b,\"018f-a\")", True), ("price=gt.9", True), ("price=lt.9.5", False),
    ("title=like.Red*", True), ("title=like.red%", False), ("title=ilike.red%", True), ("title=match.^Red", True),
    ("title=imatch.SHOES$", True), ("live=is.true", True), ("note=is.null", True), ("live=is.null", False),
    ("note=eq.x", False), ("note=neq.x", False), ("live=eq.true", True), ("id=not.eq.7", False), ("id=not.in.(1,2)", True),
    ("id=gt.0,id=lt.100", True), ("id=gt.0,id=lt.5", False), ("missing=eq.1", False), ("id=eq.abc", False),
    ("id=neq.abc", True), ("note=isdistinct.null", False), ("id=isdistinct.8", True), ("title=eq.\"Red Shoes\"", True),
    ("tags=eq.a", False),
]


@pytest.mark.parametrize(("text", "expected"), MATCHES)
def test_matching(text: str, expected: bool) -> None:
    assert parse_filter(text).matches(REC) is expected


@pytest.mark.parametrize(("text", "message"), [
    ("id=foo.hey", 'Error parsing `filter` params: ["id", "foo"]'),
    ("undefined", 'Error parsing `filter` params: ["undefined"]'),
    ("id=in.1,2", "`in` filter value must be wrapped by parentheses"),
    ("id=eq.1,,id=eq.2", "filter must not contain empty segments (check for extra commas)"),
    ("id=eq", 'Error parsing `filter` params: ["id", "eq"]'),
    ("id=is.maybe", 'Error parsing `filter` params: ["id", "is", "maybe"]'),
    ("title=match.(", 'Error parsing `filter` params: ["title", "match", "("]: unsupported regular expression (missing ): ()'),
])
def test_errors_carry_supabase_messages(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert info.value.message == message


def test_quoted_values_and_top_level_split() -> None:
    f = parse_filter('name=eq."a,b",id=in.(1,2)')
    assert f.conditions == (Condition("name", "eq", "a,b"), Condition("id", "in", ("1", "2")))
    assert f.eq_key() == ("name", "a,b")
    assert parse_filter("id=not.eq.1").eq_key() is None
    assert Filter().matches(None) and not parse_filter("id=eq.1").matches(None)


@given(st.integers(-50, 50), st.integers(-50, 50), st.sampled_from(["eq", "neq", "lt", "lte", "gt", "gte"]), st.booleans())
def test_comparisons_agree_with_python(a: int, b: int, op: str, negate: bool) -> None:
    import operator
    ops: dict[str, Any] = {"eq": operator.eq, "neq": operator.ne, "lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}
    text = f"v={'not.' if negate else ''}{op}.{b}"
    assert parse_filter(text).matches({"v": a}) is (ops[op](a, b) != negate)
