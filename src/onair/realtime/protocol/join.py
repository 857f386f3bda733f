"""The ``phx_join`` payload and the join reply (spec §3.2, §3.3).

An invalid join payload is not rejected: like the Elixir server we fall back to defaults
(spec §3.2). Booleans may be JSON booleans or the strings ``"true"``/``"false"`` in any case.
Each postgres_changes binding is echoed back byte-for-byte plus an integer ``id`` that depends only
on the binding (the Elixir server uses ``phash2(params)``), so equal bindings share an id across
clients and the hub can encode one change once for all of them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from onair.realtime.protocol.filters import (
    DEFAULT_LIMITS,
    Filter,
    FilterError,
    FilterLimits,
    parse_filter,
)

CHANGE_EVENTS = frozenset({"*", "INSERT", "UPDATE", "DELETE"})


def flexible_bool(value: Any, default: bool = False) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


@dataclass(frozen=True, slots=True)
class Binding:
    """One postgres_changes binding of a join; ``error`` is set when it cannot be honoured."""

    id: int
    raw: dict[str, Any]
    event: str
    schema: str
    table: str
    filter: Filter
    error: str | None = None

    def wants(self, change_type: str) -> bool:
        return self.event == "*" or self.event == change_type


def binding_id(raw: dict[str, Any]) -> int:
    return zlib.crc32(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)) & 0x7FFFFFF


def refused(raw: dict[str, Any], error: str) -> Binding:
    """A binding that is echoed but never matched."""
    try:
        return Binding(binding_id(raw), raw, "*", "public", "*", Filter(), error)
    except TypeError:  # nested past orjson's 255 levels: echo what realtime-js compares
        raw = {k: v for k, v in raw.items() if isinstance(v, str) and k in ("event", "schema", "table", "filter")}
        return Binding(binding_id(raw), raw, "*", "public", "*", Filter(), error)


def parse_binding(raw: dict[str, Any], limits: FilterLimits = DEFAULT_LIMITS) -> Binding:
    try:
        bid = binding_id(raw)
    except TypeError:
        return refused(raw, "postgres_changes binding is nested too deeply")
    event = raw.get("event")
    event = event.upper() if isinstance(event, str) else "*"
    if event not in CHANGE_EVENTS:
        event = "*"  # unknown values mean "*" (spec §6.1)
    schema = raw.get("schema")
    table = raw.get("table")
    schema = schema if isinstance(schema, str) and schema else "public"
    table = table if isinstance(table, str) and table else "*"
    error = None
    try:
        flt = parse_filter(raw.get("filter"), limits)
    except FilterError as exc:
        flt, error = Filter(), exc.message
    return Binding(bid, raw, event, schema, table, flt, error)


@dataclass(frozen=True, slots=True)
class JoinConfig:
    broadcast_self: bool = False
    broadcast_ack: bool = False
    presence_key: str = ""
    presence_enabled: bool = False
    private: bool = False
    bindings: tuple[Binding, ...] = ()
    access_token: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def parse_bindings(changes: list[Any], limits: FilterLimits = DEFAULT_LIMITS) -> tuple[Binding, ...]:
    """Bindings past ``limits.max_bindings`` are refused (not parsed: parsing compiles patterns)."""
    raws = [b for b in changes if isinstance(b, dict)]
    too_many = f"at most {limits.max_bindings} postgres_changes bindings per channel"
    return tuple(parse_binding(b, limits) if i < limits.max_bindings
                 else refused(b, too_many)
                 for i, b in enumerate(raws))


def parse_join(payload: Any, limits: FilterLimits = DEFAULT_LIMITS) -> JoinConfig:
    if not isinstance(payload, dict):
        return JoinConfig()
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        user_token = payload.get("user_token")  # legacy field (spec §1.3)
        token = user_token if isinstance(user_token, str) and user_token else None
    config = payload.get("config")
    if not isinstance(config, dict):
        return JoinConfig(access_token=token)
    broadcast = config.get("broadcast")
    broadcast = broadcast if isinstance(broadcast, dict) else {}
    presence = config.get("presence")
    presence = presence if isinstance(presence, dict) else {}
    key = presence.get("key")
    changes = config.get("postgres_changes")
    changes = changes if isinstance(changes, list) else []
    return JoinConfig(
        broadcast_self=flexible_bool(broadcast.get("self")),
        broadcast_ack=flexible_bool(broadcast.get("ack")),
        presence_key=key if isinstance(key, str) else str(key) if isinstance(key, (int, float)) else "",
        presence_enabled=flexible_bool(presence.get("enabled")),
        private=flexible_bool(config.get("private")),
        bindings=parse_bindings(changes, limits),
        access_token=token,
    )


def join_response(config: JoinConfig) -> dict[str, Any]:
    """``{"postgres_changes": [<binding echoed + id>, ...]}`` in the client's order."""
    return {"postgres_changes": [{**b.raw, "id": b.id} for b in config.bindings]}
