"""Presence state and diffs in Phoenix's shape (spec §5.2).

One entry per channel join, under the join's presence key; every meta carries ``phx_ref``
(the Python client pops it unconditionally) and, after an update, ``phx_ref_prev``. An update is
one diff with the new meta in ``joins`` and the old one in ``leaves``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PresenceMeta:
    key: str
    ref: str
    meta: dict[str, Any]
    prev_ref: str | None = None

    def wire(self, with_prev: bool = True) -> dict[str, Any]:
        out = {"phx_ref": self.ref, **self.meta}
        if with_prev and self.prev_ref is not None:
            out["phx_ref_prev"] = self.prev_ref
        return out


def state(entries: list[PresenceMeta], with_prev: bool = False) -> dict[str, Any]:
    """``presence_state`` payload: ``{key: {"metas": [...]}}``."""
    out: dict[str, Any] = {}
    for e in entries:
        out.setdefault(e.key, {"metas": []})["metas"].append(e.wire(with_prev))
    return out


def diff(joins: list[PresenceMeta], leaves: list[PresenceMeta]) -> dict[str, Any]:
    """``presence_diff`` payload; only joins carry ``phx_ref_prev``."""
    return {"joins": state(joins, with_prev=True), "leaves": state(leaves)}
