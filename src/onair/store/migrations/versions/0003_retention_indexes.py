"""retention: indexes for the prune queries, and a marker for chat already purged

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 16:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import onair.store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stream_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chat_purged_at",
                                      onair.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_stream_sessions_status_chat_purged_at_ended_at"),
                              ["status", "chat_purged_at", "ended_at"], unique=False)
    with op.batch_alter_table("stream_viewers", schema=None) as batch_op:
        batch_op.create_index("ix_stream_viewers_left_at", ["left_at"], unique=False,
                              sqlite_where=sa.text("left_at IS NOT NULL"),
                              postgresql_where=sa.text("left_at IS NOT NULL"))
    with op.batch_alter_table("agora_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agora_tokens_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agora_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agora_tokens_expires_at"))
    with op.batch_alter_table("stream_viewers", schema=None) as batch_op:
        batch_op.drop_index("ix_stream_viewers_left_at")
    with op.batch_alter_table("stream_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stream_sessions_status_chat_purged_at_ended_at"))
        batch_op.drop_column("chat_purged_at")
