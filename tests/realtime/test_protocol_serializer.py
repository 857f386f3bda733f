"""Golden table for both serializers, driven in both directions (STYLE §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onair.realtime.protocol import messages as m
from onair.realtime.protocol.errors import ProtocolError
from onair.realtime.protocol.messages import BroadcastPush, Message
from onair.realtime.protocol.serializer import SERIALIZERS, encode_push, serializer_for

JOIN_CONFIG = {"config": {"broadcast": {"ack": False, "self": False}, "presence": {"key": "", "enabled": False}, "postgres_changes": [], "private": False}}
PRESENCE_STATE = {"user-42": {"metas": [{"phx_ref": "GHlA1fShRjMmZhnL", "name": "js"}]}}
PRESENCE_DIFF = {"joins": PRESENCE_STATE, "leaves": {}}
CHANGE = {"ids": [106243155], "data": {"schema": "public", "table": "todos", "commit_timestamp": "2025-11-19T00:22:40.877Z", "type": "UPDATE", "columns": [{"name": "id", "type": "int8"}], "record": {"id": 7}, "old_record": {"id": 7}, "errors": None}}
BCAST = {"type": "broadcast", "event": "cursor", "payload": {"x": 1}}

# (message, vsn, wire, direction): "both" = encode(message) == wire and decode(wire) == message.
CASES: list[tuple[Message | BroadcastPush, str, bytes, str]] = [
    (Message("6", "6", "realtime:room1", "phx_join", JOIN_CONFIG), "2.0.0",
     b'["6","6","realtime:room1","phx_join",{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}]', "both"),
    (Message("6", "6", "realtime:room1", "phx_reply", {"status": "ok", "response": {"postgres_changes": []}}), "2.0.0",
     b'["6","6","realtime:room1","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]', "both"),
    (Message("6", "11", "realtime:room1", "phx_leave", {}), "2.0.0", b'["6","11","realtime:room1","phx_leave",{}]', "both"),
    (Message("6", "6", "realtime:room1", "phx_close", {}), "2.0.0", b'["6","6","realtime:room1","phx_close",{}]', "both"),
    (Message(None, "9", "phoenix", "heartbeat", {}), "2.0.0", b'[null,"9","phoenix","heartbeat",{}]', "both"),
    (Message(None, None, "realtime:room1", "broadcast", BCAST), "2.0.0",
     b'[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]', "both"),
    (Message("6", None, "realtime:room1", "presence_state", PRESENCE_STATE), "2.0.0",
     b'["6",null,"realtime:room1","presence_state",{"user-42":{"metas":[{"phx_ref":"GHlA1fShRjMmZhnL","name":"js"}]}}]', "both"),
    (Message(None, None, "realtime:room1", "presence_diff", PRESENCE_DIFF), "2.0.0",
     b'[null,null,"realtime:room1","presence_diff",{"joins":{"user-42":{"metas":[{"phx_ref":"GHlA1fShRjMmZhnL","name":"js"}]}},"leaves":{}}]', "both"),
    (Message(None, None, "realtime:room1", "postgres_changes", CHANGE), "2.0.0",
     b'[null,null,"realtime:room1","postgres_changes",{"ids":[106243155],"data":{"schema":"public","table":"todos","commit_timestamp":"2025-11-19T00:22:40.877Z","type":"UPDATE","columns":[{"name":"id","type":"int8"}],"record":{"id":7},"old_record":{"id":7},"errors":null}}]', "both"),
    (m.system("1", "realtime:room1", "postgres_changes", "ok", "Subscribed to PostgreSQL"), "2.0.0",
     b'["1",null,"realtime:room1","system",{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL","channel":"room1"}]', "both"),
    (Message("6", "6", "realtime:room1", "phx_error", {}), "2.0.0", b'["6","6","realtime:room1","phx_error",{}]', "both"),
    (Message("6", "14", "realtime:room1", "access_token", {"access_token": "t"}), "2.0.0",
     b'["6","14","realtime:room1","access_token",{"access_token":"t"}]', "both"),
    (Message("6", "7", "realtime:room1", "presence", {"type": "presence", "event": "track", "payload": {"name": "js"}}), "2.0.0",
     b'["6","7","realtime:room1","presence",{"type":"presence","event":"track","payload":{"name":"js"}}]', "both"),
    # extra trailing elements are accepted (Elixir decode_text)
    (Message("1", "2", "realtime:a", "phx_leave", {}), "2.0.0", b'["1","2","realtime:a","phx_leave",{},"extra"]', "decode"),
    # binary kind 3 (spec §2.3 worked example)
    (BroadcastPush("6", "8", "realtime:room1", "cursor", {}, b'{"from":"js"}', True), "2.0.0",
     b'\x03\x01\x01\x0e\x06\x00\x01' b'68realtime:room1cursor{"from":"js"}', "both"),
    (BroadcastPush("6", "8", "realtime:room1", "cursor", {"persist": True}, b"\x00\xff", False), "2.0.0",
     b'\x03\x01\x01\x0e\x06\x10\x00' b'68realtime:room1cursor{"persist":true}\x00\xff', "both"),
    # vsn 1.0.0: the server writes topic, event, payload, ref; clients add join_ref
    (Message(None, "1", "realtime:room1", "phx_reply", {"status": "ok", "response": {"postgres_changes": []}}), "1.0.0",
     b'{"topic":"realtime:room1","event":"phx_reply","payload":{"status":"ok","response":{"postgres_changes":[]}},"ref":"1"}', "both"),
    (Message(None, None, "phoenix", "heartbeat", {}), "1.0.0", b'{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null}', "both"),
    (Message(None, None, "realtime:room1", "broadcast", BCAST), "1.0.0",
     b'{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast","event":"cursor","payload":{"x":1}},"ref":null}', "both"),
    (Message(None, None, "realtime:room1", "presence_state", PRESENCE_STATE), "1.0.0",
     b'{"topic":"realtime:room1","event":"presence_state","payload":{"user-42":{"metas":[{"phx_ref":"GHlA1fShRjMmZhnL","name":"js"}]}},"ref":null}', "both"),
    (Message(None, None, "realtime:room1", "postgres_changes", {"ids": [1], "data": {}}), "1.0.0",
     b'{"topic":"realtime:room1","event":"postgres_changes","payload":{"ids":[1],"data":{}},"ref":null}', "both"),
    (Message("1", "1", "realtime:room1", "phx_join", JOIN_CONFIG), "1.0.0",
     b'{"event":"phx_join","payload":{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}},"topic":"realtime:room1","ref":"1","join_ref":"1"}', "decode"),
    (Message(None, None, "phoenix", "heartbeat", {}), "1.0.0",
     b'{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null,"join_ref":null}', "decode"),
]


def _encode(msg: Message | BroadcastPush, vsn: str) -> bytes:
    if isinstance(msg, BroadcastPush):
        return encode_push(msg)
    return SERIALIZERS[vsn].encode(msg)


@pytest.mark.parametrize(("msg", "vsn", "wire", "direction"), CASES)
def test_encode(msg: Message | BroadcastPush, vsn: str, wire: bytes, direction: str) -> None:
    if direction != "decode":
        assert _encode(msg, vsn) == wire


@pytest.mark.parametrize(("msg", "vsn", "wire", "direction"), CASES)
def test_decode(msg: Message | BroadcastPush, vsn: str, wire: bytes, direction: str) -> None:
    if direction != "encode":
        assert SERIALIZERS[vsn].decode(wire, isinstance(msg, BroadcastPush)) == msg


def test_every_event_and_shape_is_in_the_table() -> None:
    events = {c[0].event for c in CASES if isinstance(c[0], Message)}
    wanted = {v for k, v in vars(m).items() if k.isupper() and isinstance(v, str) and k not in ("PHOENIX_TOPIC", "TOPIC_PREFIX")}
    assert wanted <= events, wanted - events
    assert {type(c[0]) for c in CASES} == {Message, BroadcastPush}
    assert {c[1] for c in CASES} == {"1.0.0", "2.0.0"}


def test_kind4_broadcast_out_and_v1_cannot_carry_raw_bytes() -> None:
    wire = SERIALIZERS["2.0.0"].encode_raw_broadcast("realtime:room1", "cursor", {}, b"\x01\x02")
    assert wire == b"\x04\x0e\x06\x00\x00realtime:room1cursor\x01\x02"
    assert SERIALIZERS["1.0.0"].encode_raw_broadcast("realtime:room1", "cursor", {}, b"\x01") is None
    assert SERIALIZERS["2.0.0"].encode_raw_broadcast("x" * 300, "e", {}, b"") is None


def test_vsn_negotiation() -> None:
    assert serializer_for(None) is SERIALIZERS["1.0.0"]
    assert serializer_for("2.0.0") is SERIALIZERS["2.0.0"]
    assert serializer_for("3.0.0") is None


GARBAGE_TEXT = [
    b"", b"{", b"[", b"null", b"42", b'"str"', b"[1,2,3]", b'[null,null,"t","e"]', b'[null,null,1,"e",{}]',
    b'[null,null,"t",null,{}]', b'[null,{},"t","e",{}]', b'{"topic":"t","event":"e","payload":{}}',
    b'{"topic":"t","event":5,"payload":{},"ref":null}', b"\xff\xfe", b'["a","b","c","d",{}]garbage',
]


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
@pytest.mark.parametrize("data", GARBAGE_TEXT)
def test_garbage_text_is_a_protocol_error(vsn: str, data: bytes) -> None:
    with pytest.raises(ProtocolError):
        SERIALIZERS[vsn].decode(data)


@pytest.mark.parametrize(("msg", "vsn", "wire", "direction"), [c for c in CASES if c[2][:1] in (b"[", b"{", b"\x03")])
def test_truncated_frames_are_protocol_errors(msg: object, vsn: str, wire: bytes, direction: str) -> None:
    if direction == "encode":
        return
    binary = isinstance(msg, BroadcastPush)
    cut_points = range(len(wire) - (len(b'{"from":"js"}') if binary else 0))
    for cut in cut_points:
        try:
            decoded = SERIALIZERS[vsn].decode(wire[:cut], binary)
        except ProtocolError:
            continue
        raise AssertionError(f"decoded a truncated frame: {wire[:cut]!r} -> {decoded!r}")


def test_binary_garbage() -> None:
    v2 = SERIALIZERS["2.0.0"]
    for data in [b"\x04\x00\x00\x00\x00", b"\x00" * 7, b"\x03\x01\x01\x01\x01\x00\x07abcd", b"\x03\x01\x01\x01\x01\x00\x01abcd{",
                 b"\x03\x00\x00\x01\x01\x02\x01te[]{}", b"\x03\x00\x00\x01\x01\x00\x01\xff\xfe{}"]:
        with pytest.raises(ProtocolError):
            v2.decode(data, True)
    with pytest.raises(ProtocolError):
        SERIALIZERS["1.0.0"].decode(b"\x03", True)


@given(st.binary(max_size=64), st.booleans(), st.sampled_from(["1.0.0", "2.0.0"]))
def test_decoder_never_crashes(data: bytes, binary: bool, vsn: str) -> None:
    try:
        SERIALIZERS[vsn].decode(data, binary)
    except ProtocolError:
        pass
