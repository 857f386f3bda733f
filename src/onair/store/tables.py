"""The schema, as SQLAlchemy Core tables. Alembic migrations are generated from it.

Each index names the query it serves; an index without a query is a cost without a benefit.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from onair.store.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

ID = String(36)
USER = String(255)

stream_sessions = Table(
    "stream_sessions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("seller_id", USER, nullable=False),
    Column("title", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    # Optimistic concurrency: every transition is `UPDATE … WHERE version = :seen`.
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("paused_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("pause_reason", String(64)),
    Column("end_reason", String(200)),
    Column("last_host_heartbeat_at", UTCDateTime),
    Column("viewer_count", Integer, nullable=False, server_default="0"),
    Column("peak_viewers", Integer, nullable=False, server_default="0"),
    Column("slow_mode_seconds", Integer, nullable=False, server_default="0"),
    # Highest chat seq handed out; bumped in the chat write transaction (gapless seqs).
    Column("last_chat_seq", BigInteger, nullable=False, server_default="0"),
    # When chat retention deleted this ended stream's chat (NULL: not yet / kept).
    Column("chat_purged_at", UTCDateTime),
    # When retention deleted this ended stream's uid roster (stream_uids).
    Column("roster_purged_at", UTCDateTime),
    # GET /streams?status=…, newest first, cursor on id (ids are time-ordered UUIDv7).
    Index(None, "status", "id"),
    # GET /streams?seller_id=…, newest first.
    Index(None, "seller_id", "id"),
    # Reaper: live streams whose host heartbeat is older than the grace period.
    Index(None, "status", "last_host_heartbeat_at"),
    # Reaper: paused streams paused for longer than the pause timeout.
    Index(None, "status", "paused_at"),
    # Retention: ended streams whose chat is still there, oldest end first (each stream once).
    # (Not partial: SQLite uses a partial index only when the query repeats its literals.)
    Index(None, "status", "chat_purged_at", "ended_at"),
    # Retention: ended streams whose uid roster is still there, oldest end first.
    Index(None, "status", "roster_purged_at", "ended_at"),
)

stream_transitions = Table(
    "stream_transitions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("stream_id", ID, ForeignKey("stream_sessions.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("from_status", String(16), nullable=False),
    Column("to_status", String(16), nullable=False),
    Column("actor_id", USER),
    Column("reason", String(200)),
    Column("at", UTCDateTime, nullable=False),
    # A stream's history in order; unique so two writers can never both claim one version.
    UniqueConstraint("stream_id", "version"),
)

stream_viewers = Table(
    "stream_viewers",
    metadata,
    Column("stream_id", ID, ForeignKey("stream_sessions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", USER, primary_key=True),
    Column("joined_at", UTCDateTime, nullable=False),
    Column("last_heartbeat_at", UTCDateTime, nullable=False),
    Column("left_at", UTCDateTime),
    # Reaper: present viewers whose heartbeat is older than viewer_timeout.
    Index("ix_stream_viewers_present_heartbeat", "last_heartbeat_at",
          sqlite_where=text("left_at IS NULL"), postgresql_where=text("left_at IS NULL")),
    # Retention: viewers who left before the grace period, oldest first.
    Index("ix_stream_viewers_left_at", "left_at",
          sqlite_where=text("left_at IS NOT NULL"), postgresql_where=text("left_at IS NOT NULL")),
)
# Counting present viewers of one stream uses the primary key prefix (stream_id).

stream_cohosts = Table(
    "stream_cohosts",
    metadata,
    Column("stream_id", ID, ForeignKey("stream_sessions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", USER, primary_key=True),
    Column("invited_by", USER, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", ID, primary_key=True),
    Column("stream_id", ID, ForeignKey("stream_sessions.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("sender_id", USER, nullable=False),
    Column("client_msg_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("client_sent_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("edited_at", UTCDateTime),
    Column("edited_by", USER),
    Column("deleted_at", UTCDateTime),
    Column("deleted_by", USER),
    # SHA-256 of the normalized body first sent: a retry of that send is compared with it (same
    # body → the original message, else 409) even after the message was edited or deleted.
    Column("sent_body_sha256", String(64), nullable=False, server_default=""),
    # History pages (before_seq, newest first) and resync (after_seq, oldest first).
    UniqueConstraint("stream_id", "seq"),
    # Idempotent sends: the same (stream, sender, client_msg_id) is one row forever.
    UniqueConstraint("stream_id", "sender_id", "client_msg_id"),
)

chat_sanctions = Table(
    "chat_sanctions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("stream_id", ID, ForeignKey("stream_sessions.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", USER, nullable=False),
    Column("kind", String(8), nullable=False),  # mute | ban
    Column("until", UTCDateTime),  # NULL: until lifted
    Column("reason", String(500)),
    Column("created_by", USER, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("lifted_at", UTCDateTime),
    # Send path: is this user muted or banned in this stream right now?
    Index(None, "stream_id", "user_id"),
)

agora_tokens = Table(
    "agora_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("stream_id", ID, ForeignKey("stream_sessions.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", USER, nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("role", String(16), nullable=False),  # publisher | subscriber | rtm
    Column("kind", String(8), nullable=False),  # rtc | rtm
    # SHA-256 of the token string: enough to recognise it, useless to replay it.
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("revoke_reason", String(64)),
    # Revoke a user's tokens on demotion; revoke a stream's tokens on end (prefix).
    Index(None, "stream_id", "user_id", "revoked_at"),
    # Retention: ledger rows expired before the grace period, oldest first.
    Index(None, "expires_at"),
    # Token refresh: the role of a user's latest token of a kind in a stream (read off the end).
    Index(None, "stream_id", "user_id", "kind", "issued_at", "id"),
)

stream_uids = Table(
    "stream_uids",
    metadata,
    Column("stream_id", ID, ForeignKey("stream_sessions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", USER, primary_key=True),
    Column("uid", BigInteger, nullable=False),
    # A uid identifies one user within a stream's channel.
    UniqueConstraint("stream_id", "uid"),
)

# A stream's product showcase (domain/showcase.py): one state row carrying the per-stream version,
# the pinned product and the pinned chat message (a copy of its body, kept in step with edits and
# cleared on deletion by services/chat.py), plus one row per product in the tray.
showcase_state = Table(
    "showcase_state",
    metadata,
    Column("stream_id", ID, ForeignKey("stream_sessions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("version", Integer, nullable=False),
    Column("pinned_product_id", ID),
    Column("pinned_message_id", ID),
    Column("pinned_message_seq", BigInteger),
    Column("pinned_message_sender", USER),
    Column("pinned_message_body", Text),
    Column("pinned_by", USER),
    Column("pinned_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

showcase_products = Table(
    "showcase_products",
    metadata,
    Column("id", ID, primary_key=True),
    Column("stream_id", ID, ForeignKey("stream_sessions.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("title", String(500), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("product_url", String(2048), nullable=False),
    Column("image_url", String(2048)),
    Column("stock", BigInteger),
    Column("external_id", String(255)),
    Column("sold_out", Boolean, nullable=False, server_default="0"),
    Column("deal_price_minor", BigInteger),
    Column("deal_ends_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    # GET /streams/{id}/showcase: a stream's tray in order.
    Index(None, "stream_id", "position"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
