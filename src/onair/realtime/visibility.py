"""Who may see which table rows, columns and server events on a stream channel (issue 10 §6).

One table for everything that leaves the server as a change or a server broadcast. Readers are
ranked: ``anyone`` (every reader of the stream, the anon key on public channels included) <
``signed_in`` (a user token) < ``owner`` (the stream's seller and co-hosts) < ``staff``
(moderator, admin, service). A table's rule names the lowest rank that may bind to it and the
columns that rank and every higher one receive, so a change is projected once per change, not
once per subscriber. ``old_record`` carries only the row's identity (as Supabase does without
``REPLICA IDENTITY FULL``): pre-edit and deleted bodies never leave the server. A table that is
not listed here is refused at join and never delivered (default deny).

Server broadcasts are ``all`` (every reader of the channel) or ``subject``: only the user the
payload names (``user_id``), the stream's owners and staff receive them (who was muted, banned,
promoted or demoted is nobody else's business).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RANKS = ("anyone", "signed_in", "owner", "staff")


@dataclass(frozen=True, slots=True)
class TableRule:
    read: str  # the lowest rank that may bind to the table
    stream_column: str  # the column naming the row's stream (bindings must filter on it)
    columns: frozenset[str]  # delivered in ``record``
    identity: frozenset[str]  # delivered in ``old_record``


def _rule(read: str, stream_column: str, columns: str, identity: str) -> TableRule:
    return TableRule(read, stream_column, frozenset(columns.split()), frozenset(identity.split()))


TABLES: dict[str, TableRule] = {
    "chat_messages": _rule(
        "anyone", "stream_id",
        "id stream_id seq sender_id client_msg_id body client_sent_at created_at edited_at edited_by "
        "deleted_at deleted_by",
        "id stream_id seq sender_id"),
    "stream_sessions": _rule(
        "anyone", "id",
        "id seller_id title status version created_at started_at paused_at ended_at end_reason "
        "pause_reason viewer_count peak_viewers slow_mode_seconds",
        "id status version"),
    "stream_viewers": _rule(
        "owner", "stream_id", "stream_id user_id joined_at last_heartbeat_at left_at", "stream_id user_id"),
    # GET /streams/{id}/cohosts needs a user token: the same readers here.
    "stream_cohosts": _rule("signed_in", "stream_id", "stream_id user_id invited_by created_at", "stream_id user_id"),
    # Never published today; listed so that publishing one cannot leak by accident.
    "chat_sanctions": _rule(
        "owner", "stream_id", "id stream_id user_id kind until reason created_by created_at lifted_at",
        "id stream_id user_id"),
}
# Tables whose rows never leave the server (token ledger, uids, history, leases); every table of
# the schema is either in TABLES or here (tests/security/test_visibility_rules.py).
# The showcase tables travel as ``showcase`` broadcasts (services/showcase.py), never as rows.
NOT_DELIVERED: frozenset[str] = frozenset({"agora_tokens", "stream_uids", "stream_transitions", "leases",
                                           "showcase_state", "showcase_products"})

# Server broadcasts on a stream channel (services/events.py ``broadcast_event``): who hears them.
# An event name not listed is not delivered (default deny).
EVENTS: dict[str, str] = {
    "stream_state": "all",
    "viewer_count": "all",
    "chat_settings": "all",
    "showcase": "all",  # products and the pinned chat message: public like the chat itself
    "chat_sanction": "subject",
    "token_renew": "subject",
}
SUBJECT_EVENTS = frozenset(name for name, audience in EVENTS.items() if audience == "subject")


def rank_allows(rank: str, needed: str) -> bool:
    return RANKS.index(rank) >= RANKS.index(needed)


def project(table: str, row: dict[str, Any] | None, *, identity: bool = False) -> dict[str, Any] | None:
    """``row`` reduced to what readers of ``table`` may see; None for an unlisted table."""
    rule = TABLES.get(table)
    if rule is None or row is None:
        return None
    keep = rule.identity if identity else rule.columns
    return {k: v for k, v in row.items() if k in keep}


def old_identity(table: str, row: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a service may put into an event's ``old_record``: the row's identity, nothing else."""
    return project(table, row, identity=True)
