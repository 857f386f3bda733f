"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 01:27:54.742589
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import onair.store.types

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('expires_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leases'))
    )
    op.create_table('stream_sessions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('seller_id', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paused_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('pause_reason', sa.String(length=64), nullable=True),
    sa.Column('end_reason', sa.String(length=200), nullable=True),
    sa.Column('last_host_heartbeat_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('viewer_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('peak_viewers', sa.Integer(), server_default='0', nullable=False),
    sa.Column('slow_mode_seconds', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_chat_seq', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stream_sessions'))
    )
    with op.batch_alter_table('stream_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stream_sessions_seller_id_id'), ['seller_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stream_sessions_status_id'), ['status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stream_sessions_status_last_host_heartbeat_at'), ['status', 'last_host_heartbeat_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_stream_sessions_status_paused_at'), ['status', 'paused_at'], unique=False)

    op.create_table('agora_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('stream_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('issued_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoke_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['stream_id'], ['stream_sessions.id'], name=op.f('fk_agora_tokens_stream_id_stream_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agora_tokens')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_agora_tokens_token_sha256'))
    )
    with op.batch_alter_table('agora_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agora_tokens_stream_id_user_id_revoked_at'), ['stream_id', 'user_id', 'revoked_at'], unique=False)

    op.create_table('chat_messages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('stream_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('client_msg_id', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('client_sent_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('edited_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('edited_by', sa.String(length=255), nullable=True),
    sa.Column('deleted_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deleted_by', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['stream_id'], ['stream_sessions.id'], name=op.f('fk_chat_messages_stream_id_stream_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_messages')),
    sa.UniqueConstraint('stream_id', 'sender_id', 'client_msg_id', name=op.f('uq_chat_messages_stream_id_sender_id_client_msg_id')),
    sa.UniqueConstraint('stream_id', 'seq', name=op.f('uq_chat_messages_stream_id_seq'))
    )
    op.create_table('chat_sanctions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('stream_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('until', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lifted_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['stream_id'], ['stream_sessions.id'], name=op.f('fk_chat_sanctions_stream_id_stream_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_sanctions'))
    )
    with op.batch_alter_table('chat_sanctions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_sanctions_stream_id_user_id'), ['stream_id', 'user_id'], unique=False)

    op.create_table('stream_cohosts',
    sa.Column('stream_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('invited_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stream_id'], ['stream_sessions.id'], name=op.f('fk_stream_cohosts_stream_id_stream_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('stream_id', 'user_id', name=op.f('pk_stream_cohosts'))
    )
    op.create_table('stream_transitions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('stream_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=False),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stream_id'], ['stream_sessions.id'], name=op.f('fk_stream_transitions_stream_id_stream_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stream_transitions')),
    sa.UniqueConstraint('stream_id', 'version', name=op.f('uq_stream_transitions_stream_id_version'))
    )
    op.create_table('stream_uids',
    sa.Column('stream_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['stream_id'], ['stream_sessions.id'], name=op.f('fk_stream_uids_stream_id_stream_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('stream_id', 'user_id', name=op.f('pk_stream_uids')),
    sa.UniqueConstraint('stream_id', 'uid', name=op.f('uq_stream_uids_stream_id_uid'))
    )
    op.create_table('stream_viewers',
    sa.Column('stream_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('joined_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_heartbeat_at', onair.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('left_at', onair.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['stream_id'], ['stream_sessions.id'], name=op.f('fk_stream_viewers_stream_id_stream_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('stream_id', 'user_id', name=op.f('pk_stream_viewers'))
    )
    with op.batch_alter_table('stream_viewers', schema=None) as batch_op:
        batch_op.create_index('ix_stream_viewers_present_heartbeat', ['last_heartbeat_at'], unique=False, sqlite_where=sa.text('left_at IS NULL'), postgresql_where=sa.text('left_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('stream_viewers', schema=None) as batch_op:
        batch_op.drop_index('ix_stream_viewers_present_heartbeat', sqlite_where=sa.text('left_at IS NULL'), postgresql_where=sa.text('left_at IS NULL'))

    op.drop_table('stream_viewers')
    op.drop_table('stream_uids')
    op.drop_table('stream_transitions')
    op.drop_table('stream_cohosts')
    with op.batch_alter_table('chat_sanctions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_sanctions_stream_id_user_id'))

    op.drop_table('chat_sanctions')
    op.drop_table('chat_messages')
    with op.batch_alter_table('agora_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agora_tokens_stream_id_user_id_revoked_at'))

    op.drop_table('agora_tokens')
    with op.batch_alter_table('stream_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stream_sessions_status_paused_at'))
        batch_op.drop_index(batch_op.f('ix_stream_sessions_status_last_host_heartbeat_at'))
        batch_op.drop_index(batch_op.f('ix_stream_sessions_status_id'))
        batch_op.drop_index(batch_op.f('ix_stream_sessions_seller_id_id'))

    op.drop_table('stream_sessions')
    op.drop_table('leases')
