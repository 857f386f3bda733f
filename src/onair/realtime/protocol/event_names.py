"""Reserved broadcast event names, recognised under any spelling a client might match.

Clients compare event names loosely (realtime-js: ``toLocaleLowerCase`` on both sides), so a
name the server refuses must be refused in every spelling that some client folds onto it. The
rule, shared with the browser client (``web/static/client/event_names.js``) through one data file
(``web/static/client/event_names.json``):

    fold(name) = each code point: ASCII → ASCII lowercase; in the table's ``ignorable`` ranges
    → nothing; listed under a target in the table's ``fold`` → that target; else unchanged.

A name is server-only when its fold is one of ``server_only``, host-only when its fold starts with
one of ``host_only_prefixes``, open otherwise. The table over-approximates (see
``event_names_table``): combining marks and format characters vanish, and every letter that NFKD,
casefold or any locale's casing turns into ASCII becomes that ASCII.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any, Final, Literal

Reserved = Literal["server", "host"]
SERVER: Final = "server"
HOST: Final = "host"


def _load() -> dict[str, Any]:
    path = files("onair").joinpath("web", "static", "client", "event_names.json")
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _translation(data: dict[str, Any]) -> dict[int, str | None]:
    table: dict[int, str | None] = {cp: chr(cp + 32) for cp in range(ord("A"), ord("Z") + 1)}
    for first, last in data["ignorable"]:
        table.update(dict.fromkeys(range(first, last + 1)))
    for target, sources in data["fold"].items():
        table.update(dict.fromkeys(map(ord, sources), target))
    return table


_DATA: Final = _load()
SERVER_ONLY: Final = frozenset(_DATA["server_only"])
HOST_ONLY_PREFIXES: Final = tuple(_DATA["host_only_prefixes"])
_TABLE: Final = _translation(_DATA)


def fold(name: str) -> str:
    """The spelling every variant of ``name`` collapses to (the rule above)."""
    return name.lower() if name.isascii() else name.translate(_TABLE)


def reserved_for(name: str) -> Reserved | None:
    """Who alone may send ``name``: ``"server"`` (the service role), ``"host"`` (the stream's seller,
    co-hosts and staff) or ``None`` (anyone allowed to broadcast)."""
    folded = fold(name)
    if folded in SERVER_ONLY:
        return SERVER
    if folded.startswith(HOST_ONLY_PREFIXES):
        return HOST
    return None
