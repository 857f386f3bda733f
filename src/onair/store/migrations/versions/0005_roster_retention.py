"""retention of ended streams' uid rosters (a marker and its index), and an index for the
latest-role lookup of token refresh

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import onair.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stream_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("roster_purged_at",
                                      onair.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_stream_sessions_status_roster_purged_at_ended_at"),
                              ["status", "roster_purged_at", "ended_at"], unique=False)
    with op.batch_alter_table("agora_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agora_tokens_stream_id_user_id_kind_issued_at_id"),
                              ["stream_id", "user_id", "kind", "issued_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agora_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agora_tokens_stream_id_user_id_kind_issued_at_id"))
    with op.batch_alter_table("stream_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stream_sessions_status_roster_purged_at_ended_at"))
        batch_op.drop_column("roster_purged_at")
