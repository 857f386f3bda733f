"""Issue 10 §6: every table of the schema has an explicit visibility decision, and the rules are
consistent with the schema (a new table or column cannot leak by default)."""

from __future__ import annotations

from onair.realtime.changes import RowChange
from onair.realtime.visibility import NOT_DELIVERED, TABLES
from onair.store.tables import metadata


def test_every_table_has_a_decision() -> None:
    assert set(metadata.tables) == set(TABLES) | NOT_DELIVERED
    assert not set(TABLES) & NOT_DELIVERED


def test_rules_name_real_columns_and_identity_keeps_the_stream() -> None:
    for name, rule in TABLES.items():
        columns = set(metadata.tables[name].columns.keys())
        assert rule.columns <= columns and rule.identity <= rule.columns, name
        assert rule.stream_column in rule.identity, name  # filters on DELETE need it
    assert "sent_body_sha256" not in TABLES["chat_messages"].columns
    assert "body" not in TABLES["chat_messages"].identity


def test_unlisted_tables_and_hidden_columns_never_become_changes() -> None:
    for name in NOT_DELIVERED:
        assert RowChange.from_event({"table": name, "type": "INSERT", "record": {"id": "x"}}) is None
    change = RowChange.from_event({"table": "chat_messages", "type": "UPDATE",
                                   "record": {"id": "m", "stream_id": "s", "body": "new", "sent_body_sha256": "h"},
                                   "old_record": {"id": "m", "stream_id": "s", "body": "old secret"}})
    assert change is not None
    data = change.data()
    assert data["record"] == {"id": "m", "stream_id": "s", "body": "new"}
    assert data["old_record"] == {"id": "m", "stream_id": "s"}
