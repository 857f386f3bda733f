"""onair/topics.py: topic names and broker envelopes, from one golden table in both directions.

The bytes in CASES are what the publishers wrote before the module existed (dict literals through
``orjson.dumps``), so processes of the old and new version read each other (issue 12).
"""

from __future__ import annotations

import ast
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onair import topics as t
from onair.broker.presence_base import encode_diff
from onair.domain.reactions import Partial
from onair.realtime.protocol.join import JoinConfig, parse_bindings
from onair.realtime.protocol.messages import sub_topic
from onair.realtime.routing import broker_topics
from onair.services.events import broadcast_event, row_event, stream_state_event, viewer_count_event

SRC = Path(__file__).resolve().parents[2] / "src" / "onair"

# -- names ---------------------------------------------------------------------------------------

NAMES = [
    # (constructor, argument, name, parser)
    (t.stream_topic, "s1", "stream:s1", t.parse_stream_topic),
    (t.stream_topic, "", "stream:", t.parse_stream_topic),
    (t.channel_topic, "room1", "realtime:room1", t.parse_channel_topic),
    (t.channel_topic, "stream:s1", "realtime:stream:s1", t.parse_channel_topic),
    (t.stream_channel, "s1", "realtime:stream:s1", t.parse_stream_channel),
    (t.stream_channel, "0192-ab_C", "realtime:stream:0192-ab_C", t.parse_stream_channel),
]


@pytest.mark.parametrize(("make", "arg", "name", "parse"), NAMES)
def test_names_both_ways(make, arg, name, parse) -> None:
    assert make(arg) == name
    assert parse(name) == arg


@pytest.mark.parametrize(("parse", "name"), [
    (t.parse_stream_topic, "realtime:stream:s1"), (t.parse_stream_topic, "Stream:s1"),
    (t.parse_stream_topic, "onair:cache"), (t.parse_channel_topic, "stream:s1"),
    (t.parse_channel_topic, "phoenix"), (t.parse_stream_channel, "realtime:room1"),
    (t.parse_stream_channel, "stream:s1"),
])
def test_names_outside_a_family_parse_to_none(parse, name) -> None:
    assert parse(name) is None


def test_templates_and_the_protocol_prefix() -> None:
    assert t.STREAM_TOPIC_TEMPLATE.replace("{id}", "s1") == t.stream_topic("s1")
    assert t.SIGNAL_TOPIC_TEMPLATE == "stream:{id}:signal"
    assert sub_topic(t.channel_topic("room1")) == "room1" and sub_topic("room1") is None


def test_routing_asks_for_the_stream_topic_and_the_relay_topic() -> None:
    config = JoinConfig(bindings=parse_bindings([
        {"event": "*", "schema": "public", "table": "chat_messages", "filter": "stream_id=eq.s2"}]))
    assert list(broker_topics(True)(t.channel_topic("room"), config)) == ["stream:s2", "realtime:room"]
    config = JoinConfig()
    assert list(broker_topics(True)(t.stream_channel("s1"), config)) == ["stream:s1", "realtime:stream:s1"]
    assert list(broker_topics(False)(t.stream_channel("s1"), config)) == ["stream:s1"]


@given(st.text(max_size=40))
def test_every_name_round_trips(sub: str) -> None:
    assert t.parse_stream_topic(t.stream_topic(sub)) == sub
    assert t.parse_channel_topic(t.channel_topic(sub)) == sub
    assert t.parse_stream_channel(t.stream_channel(sub)) == sub


# -- envelopes: the golden table ------------------------------------------------------------------

S, C = "stream:s1", "realtime:stream:s1"
CASES: list[tuple[str, t.Envelope, bytes]] = [
    (S, t.RowEvent("chat_messages", "INSERT", {"id": "m1", "seq": 1, "created_at": "2026-01-02T03:04:05.000006Z"},
                   None, "2026-01-02T03:04:05.000006Z"),
     b'{"kind":"row","table":"chat_messages","type":"INSERT","record":{"id":"m1","seq":1,'
     b'"created_at":"2026-01-02T03:04:05.000006Z"},"old_record":null,"commit_timestamp":"2026-01-02T03:04:05.000006Z"}'),
    (S, t.RowEvent("stream_cohosts", "DELETE", None, {"stream_id": "s1", "user_id": "u"}, "2026-01-02T03:04:05Z"),
     b'{"kind":"row","table":"stream_cohosts","type":"DELETE","record":null,'
     b'"old_record":{"stream_id":"s1","user_id":"u"},"commit_timestamp":"2026-01-02T03:04:05Z"}'),
    (S, t.StreamState({"id": "s1", "status": "live", "version": 3}, "scheduled", 3),
     b'{"kind":"stream_state","stream":{"id":"s1","status":"live","version":3},"previous":"scheduled","version":3}'),
    (S, t.StreamState({"id": "s1", "status": "scheduled", "version": 0}, None, 0),
     b'{"kind":"stream_state","stream":{"id":"s1","status":"scheduled","version":0},"previous":null,"version":0}'),
    (S, t.ViewerCount("s1", 3, 5), b'{"kind":"viewer_count","stream_id":"s1","viewer_count":3,"peak_viewers":5}'),
    (S, t.StreamBroadcast("s1", "chat_sanction", {"user_id": "u", "kind": "ban", "until": None, "lifted": False}),
     b'{"kind":"broadcast","stream_id":"s1","event":"chat_sanction",'
     b'"payload":{"user_id":"u","kind":"ban","until":null,"lifted":false}}'),
    (S, t.ReactionsPartial("n1", 7, {"heart": 2, "fire": 1}),
     b'{"kind":"reactions_partial","node":"n1","seq":7,"counts":{"heart":2,"fire":1}}'),
    (C, t.ChannelBroadcast("n1", "cursor", {"x": 1}),
     b'{"kind":"broadcast","origin":"n1","event":"cursor","payload":{"x":1},"raw":null}'),
    (C, t.ChannelBroadcast("n1", "blob", None, b"\x00\xffab"),
     b'{"kind":"broadcast","origin":"n1","event":"blob","payload":null,"raw":"00ff6162"}'),
    ("realtime:room1", t.PresenceDiff("n1", {"k": {"metas": [{"phx_ref": "r", "a": 1}]}}, {}),
     b'{"kind":"presence_diff","node":"n1","joins":{"k":{"metas":[{"phx_ref":"r","a":1}]}},"leaves":{}}'),
    (t.CACHE_TOPIC, t.CacheDrop("s1", True, False, "abcd"),
     b'{"stream_id":"s1","row":true,"access":false,"origin":"abcd"}'),
]


@pytest.mark.parametrize(("topic", "envelope", "data"), CASES)
def test_encode(topic: str, envelope: t.Envelope, data: bytes) -> None:
    assert t.encode(envelope) == data


@pytest.mark.parametrize(("topic", "envelope", "data"), CASES)
def test_decode(topic: str, envelope: t.Envelope, data: bytes) -> None:
    assert t.decode(topic, data) == envelope


def test_every_envelope_class_is_in_the_table() -> None:
    classes = {cls for cls in vars(t).values() if isinstance(cls, type) and dataclasses.is_dataclass(cls)}
    assert {type(envelope) for _, envelope, _ in CASES} == classes
    kinds = set(t.STREAM_KINDS) | set(t.CHANNEL_KINDS)
    assert kinds == {cls.kind for cls in classes if hasattr(cls, "kind")}


def test_the_bytes_are_those_the_publishers_wrote_before() -> None:
    """The dict literals of services/events.py, realtime/service.py, services/stream_cache.py,
    domain/reactions.py and broker/presence_base.py before issue 12, with their orjson options."""
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    naive = datetime(2026, 1, 2, 3, 4, 5)
    events = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
    record = {"id": "m1", "created_at": at, "edited_at": naive, "n": 2}
    old = [
        (row_event("chat_messages", "INSERT", record, None, at),
         orjson.dumps({"kind": "row", "table": "chat_messages", "type": "INSERT", "record": record,
                       "old_record": None, "commit_timestamp": at}, option=events)),
        (stream_state_event({"id": "s", "version": 2}, "live"),
         orjson.dumps({"kind": "stream_state", "stream": {"id": "s", "version": 2}, "previous": "live",
                       "version": 2}, option=events)),
        (viewer_count_event("s", 1, 2),
         orjson.dumps({"kind": "viewer_count", "stream_id": "s", "viewer_count": 1, "peak_viewers": 2}, option=events)),
        (broadcast_event("s", "token_renew", {"user_id": "u"}),
         orjson.dumps({"kind": "broadcast", "stream_id": "s", "event": "token_renew", "payload": {"user_id": "u"}},
                      option=events)),
        (t.ChannelBroadcast("n", "e", [1, "x"], b"\x01"),
         orjson.dumps({"kind": "broadcast", "origin": "n", "event": "e", "payload": [1, "x"], "raw": "01"})),
        (t.CacheDrop("s", False, True, "o"),
         orjson.dumps({"stream_id": "s", "row": False, "access": True, "origin": "o"})),
    ]
    for envelope, data in old:
        assert t.encode(envelope) == data
    partial = Partial("s", "n", 4, {"wow": 3})
    assert t.encode(t.ReactionsPartial(partial.node, partial.seq, partial.counts)) == orjson.dumps(partial.to_event())
    assert encode_diff("n", joins=[("k", {"phx_ref": "r"})]) == orjson.dumps(
        {"kind": "presence_diff", "node": "n", "joins": {"k": {"metas": [{"phx_ref": "r"}]}}, "leaves": {}})
    assert b'"created_at":"2026-01-02T03:04:05.000006Z","edited_at":"2026-01-02T03:04:05Z"' in t.encode(old[0][0])


def test_the_stream_cache_skip_prefixes_match_the_encoding() -> None:
    from onair.services.stream_cache import _SKIP_PREFIXES

    assert t.encode(t.RowEvent("chat_messages", "INSERT", None, None, None)).startswith(_SKIP_PREFIXES[0])
    assert t.encode(t.ViewerCount("s", 1, 1)).startswith(_SKIP_PREFIXES[1])
    assert t.encode(t.RowEvent("stream_viewers", "UPDATE", None, None, None)).startswith(_SKIP_PREFIXES[2])


@pytest.mark.parametrize(("topic", "data"), [
    (S, b'{"kind":"presence_diff","node":"n","joins":{},"leaves":{}}'),  # a channel kind on a stream topic
    (C, b'{"kind":"row","table":"chat_messages","type":"INSERT"}'),  # a stream kind on a channel topic
    (S, b'{"kind":"something_newer","x":1}'),
    (S, b'{"no":"kind"}'), (S, b"[]"), (S, b"1"), ("elsewhere", b'{"kind":"row","table":"t","type":"INSERT"}'),
    (S, b'{"kind":"row","table":7,"type":"INSERT"}'), (S, b'{"kind":"stream_state","stream":[]}'),
    (S, b'{"kind":"viewer_count","stream_id":"s","viewer_count":"3","peak_viewers":5}'),
    (S, b'{"kind":"broadcast","stream_id":"s","event":7}'),
    (S, b'{"kind":"reactions_partial","node":"n","seq":"1","counts":{}}'),
    (C, b'{"kind":"broadcast","origin":"n","payload":{}}'),
    (C, b'{"kind":"presence_diff","node":"n","joins":[1],"leaves":{}}'),
    (t.CACHE_TOPIC, b'{"no":"stream"}'), (t.CACHE_TOPIC, b'{"stream_id":7}'),
])
def test_what_is_not_an_envelope_decodes_to_none(topic: str, data: bytes) -> None:
    assert t.decode(topic, data) is None


@pytest.mark.parametrize("data", [b"", b"{", b"not json", b'{"kind":"row"} trailing'])
def test_what_is_not_json_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        t.decode(S, data)


def test_lenient_fields_take_their_documented_defaults() -> None:
    assert t.decode(S, b'{"kind":"broadcast","event":"e"}') == t.StreamBroadcast("", "e", {})
    assert t.decode(C, b'{"kind":"presence_diff","node":"n","joins":null}') == t.PresenceDiff("n", {}, {})
    assert t.decode(S, b'{"kind":"stream_state","stream":{},"version":"7"}') == t.StreamState({}, None, None)
    assert t.decode(t.CACHE_TOPIC, b'{"stream_id":"s"}') == t.CacheDrop("s", True, True, "")


# -- round trips over generated envelopes ---------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
json = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
objects = st.dictionaries(st.text(max_size=5), json, max_size=4)
texts = st.text(max_size=12)
ints = st.integers(0, 2**53)
stream_envelopes = st.one_of(
    st.builds(t.RowEvent, texts, st.sampled_from(["INSERT", "UPDATE", "DELETE"]), st.none() | objects,
              st.none() | objects, st.none() | texts),
    st.builds(t.StreamState, objects, st.none() | texts, st.none() | ints),
    st.builds(t.ViewerCount, texts, ints, ints),
    st.builds(t.StreamBroadcast, texts, texts, json),
    st.builds(t.ReactionsPartial, texts, ints, st.dictionaries(texts, ints, max_size=3)),
)
channel_envelopes = st.one_of(
    st.builds(t.ChannelBroadcast, texts, texts, json, st.none() | st.binary(max_size=8)),
    st.builds(t.PresenceDiff, texts, objects, objects),
)


@given(st.text(max_size=10), stream_envelopes)
def test_stream_envelopes_round_trip(stream_id: str, envelope: t.Envelope) -> None:
    data = t.encode(envelope)
    assert t.decode(t.stream_topic(stream_id), data) == envelope
    assert t.encode(t.decode(t.stream_topic(stream_id), data)) == data  # type: ignore[arg-type]


@given(st.text(max_size=10), channel_envelopes)
def test_channel_envelopes_round_trip(sub: str, envelope: t.Envelope) -> None:
    data = t.encode(envelope)
    assert t.decode(t.channel_topic(sub), data) == envelope
    assert t.encode(t.decode(t.channel_topic(sub), data)) == data  # type: ignore[arg-type]


@given(st.builds(t.CacheDrop, texts, st.booleans(), st.booleans(), texts))
def test_cache_drops_round_trip(envelope: t.CacheDrop) -> None:
    assert t.decode(t.CACHE_TOPIC, t.encode(envelope)) == envelope


# -- one home: no topic literal anywhere else ------------------------------------------------------


def _topic_literals(path: Path, root: Path = SRC.parent) -> list[str]:
    """String constants (f-string parts included, docstrings not) that spell a topic: ``stream:…``
    or ``realtime:…`` (log lines read ``"realtime: …"``, with a space, and are not topics)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            if text.startswith("stream:") or (text.startswith("realtime:") and not text.startswith("realtime: ")):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {text!r}")
    return found


def test_no_topic_literal_outside_the_topics_module() -> None:
    found = [hit for path in sorted(SRC.rglob("*.py")) if path != SRC / "topics.py"
             for hit in _topic_literals(path)]
    # the wire protocol's own prefix (its sans-I/O core may import nothing from outside it)
    wire = next(i for i, line in enumerate((SRC / "realtime/protocol/messages.py").read_text().splitlines(), 1)
                if line.startswith("TOPIC_PREFIX = "))
    found.remove(f"onair/realtime/protocol/messages.py:{wire}: 'realtime:'")
    assert t.CHANNEL_PREFIX == "realtime:"
    assert found == [], "build topic names with onair/topics.py:\n" + "\n".join(found)


def test_the_literal_check_sees_f_strings_and_skips_docstrings_and_log_text(tmp_path: Path) -> None:
    assert _topic_literals(SRC / "topics.py")  # the one home has them
    sample = tmp_path / "x.py"
    sample.write_text('"""stream:{id} in a docstring is fine."""\nlog = "realtime: fine"\n'
                      'x = f"stream:{y}"\nz = "realtime:room"\n')
    assert sorted(hit.split(": ", 1)[1] for hit in _topic_literals(sample, tmp_path)) == ["'realtime:room'", "'stream:'"]
