"""showcase: a stream's products and its showcase state (pinned product, pinned message, version)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import onair.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "showcase_state",
        sa.Column("stream_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("pinned_product_id", sa.String(length=36), nullable=True),
        sa.Column("pinned_message_id", sa.String(length=36), nullable=True),
        sa.Column("pinned_message_seq", sa.BigInteger(), nullable=True),
        sa.Column("pinned_message_sender", sa.String(length=255), nullable=True),
        sa.Column("pinned_message_body", sa.Text(), nullable=True),
        sa.Column("pinned_by", sa.String(length=255), nullable=True),
        sa.Column("pinned_at", onair.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", onair.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["stream_sessions.id"],
                                name=op.f("fk_showcase_state_stream_id_stream_sessions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_showcase_state")),
    )
    op.create_table(
        "showcase_products",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("stream_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("product_url", sa.String(length=2048), nullable=False),
        sa.Column("image_url", sa.String(length=2048), nullable=True),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("sold_out", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("deal_price_minor", sa.BigInteger(), nullable=True),
        sa.Column("deal_ends_at", onair.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", onair.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["stream_sessions.id"],
                                name=op.f("fk_showcase_products_stream_id_stream_sessions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_showcase_products")),
    )
    with op.batch_alter_table("showcase_products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_showcase_products_stream_id_position"),
                              ["stream_id", "position"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("showcase_products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_showcase_products_stream_id_position"))
    op.drop_table("showcase_products")
    op.drop_table("showcase_state")
