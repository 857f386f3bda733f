"""The two Phoenix serializers Supabase Realtime speaks (spec §2).

* vsn 1.0.0: JSON objects in text frames. Clients send ``topic, event, payload, ref, join_ref``;
  the server writes only ``topic, event, payload, ref`` (``ref`` always present, maybe null,
  because the Python client's models require the key; spec §2.1).
* vsn 2.0.0: ``[join_ref, ref, topic, event, payload]`` arrays in text frames (extra trailing
  elements are accepted, as the Elixir decoder does), plus binary kind 3 user broadcasts from the
  client and binary kind 4 user broadcasts to the client (spec §2.3). JSON user broadcasts go out
  as text frames (both reach the same JS callback); kind 4 is used only for raw-byte payloads.

``decode`` takes the frame body as bytes and raises :class:`ProtocolError` for anything that does
not fit; ``encode`` returns the UTF-8 body of a text frame.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from onair.realtime.protocol.errors import ProtocolError
from onair.realtime.protocol.messages import BroadcastPush, Message

USER_BROADCAST_PUSH: Final = 3
USER_BROADCAST: Final = 4
_PUSH_HEADER: Final = 7
_BROADCAST_HEADER: Final = 5


def _ref(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # tolerate numeric refs from hand-written clients
    raise ProtocolError(f"{name} must be a string or null")


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{name} must be a string")
    return value


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("frame is not valid JSON") from exc


class V1Serializer:
    """vsn 1.0.0: JSON objects, text frames only."""

    vsn: Final = "1.0.0"

    def decode(self, data: bytes, binary: bool = False) -> Message:
        if binary:
            raise ProtocolError("vsn 1.0.0 has no binary frames")
        obj = _loads(data)
        if not isinstance(obj, dict):
            raise ProtocolError("vsn 1.0.0 frames are JSON objects")
        try:
            topic, event, payload = obj["topic"], obj["event"], obj["payload"]
            ref = obj["ref"]
        except KeyError as exc:
            raise ProtocolError(f"missing key {exc.args[0]!r}") from None
        return Message(
            _ref(obj.get("join_ref"), "join_ref"),
            _ref(ref, "ref"),
            _str(topic, "topic"),
            _str(event, "event"),
            payload,
        )

    def encode(self, msg: Message) -> bytes:
        return orjson.dumps(
            {"topic": msg.topic, "event": msg.event, "payload": msg.payload, "ref": msg.ref}
        )

    def encode_raw_broadcast(
        self, topic: str, event: str, metadata: dict[str, Any], payload: bytes
    ) -> bytes | None:
        """Raw-byte broadcasts cannot be represented in 1.0.0: not delivered (spec §4.3)."""
        return None


class V2Serializer:
    """vsn 2.0.0: JSON arrays in text frames, binary kinds 3 (in) and 4 (out)."""

    vsn: Final = "2.0.0"

    def decode(self, data: bytes, binary: bool = False) -> Message | BroadcastPush:
        if binary:
            return self._decode_binary(data)
        arr = _loads(data)
        if not isinstance(arr, list) or len(arr) < 5:
            raise ProtocolError("vsn 2.0.0 text frames are arrays of five elements")
        join_ref, ref, topic, event, payload = arr[:5]
        return Message(
            _ref(join_ref, "join_ref"),
            _ref(ref, "ref"),
            _str(topic, "topic"),
            _str(event, "event"),
            payload,
        )

    def _decode_binary(self, data: bytes) -> BroadcastPush:
        if len(data) < _PUSH_HEADER:
            raise ProtocolError("binary frame shorter than its header")
        kind = data[0]
        if kind != USER_BROADCAST_PUSH:
            raise ProtocolError(f"unsupported binary frame kind {kind}")
        lengths = data[1:6]
        encoding = data[6]
        if encoding not in (0, 1):
            raise ProtocolError(f"unknown payload encoding {encoding}")
        end = _PUSH_HEADER + sum(lengths)
        if len(data) < end:
            raise ProtocolError("binary frame truncated")
        fields: list[str] = []
        pos = _PUSH_HEADER
        try:
            for n in lengths:
                fields.append(data[pos : pos + n].decode())
                pos += n
        except UnicodeDecodeError as exc:
            raise ProtocolError("binary frame header is not UTF-8") from exc
        join_ref, ref, topic, event, meta_text = fields
        metadata: dict[str, Any] = {}
        if meta_text:
            meta = _loads(meta_text.encode())
            if not isinstance(meta, dict):
                raise ProtocolError("binary frame metadata must be a JSON object")
            metadata = meta
        payload = data[end:]
        if encoding == 1:
            _loads(payload)  # reject garbage before it is spliced into other clients' frames
        if not topic or not event:
            raise ProtocolError("binary frame needs a topic and an event")
        return BroadcastPush(join_ref or None, ref or None, topic, event, metadata, payload, encoding == 1)

    def encode(self, msg: Message) -> bytes:
        return orjson.dumps([msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload])

    def encode_raw_broadcast(
        self, topic: str, event: str, metadata: dict[str, Any], payload: bytes
    ) -> bytes | None:
        t, e = topic.encode(), event.encode()
        m = orjson.dumps(metadata) if metadata else b""
        if max(len(t), len(e), len(m)) > 255:
            return None
        return bytes((USER_BROADCAST, len(t), len(e), len(m), 0)) + t + e + m + payload


def encode_push(push: BroadcastPush) -> bytes:
    """Kind 3 encoder: what realtime-js sends; used by tests and the benchmark client."""
    parts = [
        (push.join_ref or "").encode(),
        (push.ref or "").encode(),
        push.topic.encode(),
        push.event.encode(),
        orjson.dumps(push.metadata) if push.metadata else b"",
    ]
    header = bytes((USER_BROADCAST_PUSH, *(len(p) for p in parts), 1 if push.is_json else 0))
    return header + b"".join(parts) + push.payload


Serializer = V1Serializer | V2Serializer
SERIALIZERS: Final[dict[str, Serializer]] = {"1.0.0": V1Serializer(), "2.0.0": V2Serializer()}


def serializer_for(vsn: str | None) -> Serializer | None:
    """Absent ``vsn`` means 1.0.0 (spec §1.2); unknown versions are refused (None)."""
    return SERIALIZERS.get(vsn or "1.0.0")
