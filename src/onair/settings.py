"""Every knob of onair, read from ``ONAIR_*`` environment variables and a ``.env`` file.

Every timeout, interval and limit lives here with a default and a description; the README's
configuration table is generated from these descriptions (``python -m onair.settings``), so a
setting without a description is a bug.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ONAIR_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- service ---
    host: str = Field("127.0.0.1", description="Address `onair serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port for REST, realtime and pages.")
    workers: int = Field(
        1, ge=1, le=64, description="Processes `onair serve` runs on the port (one listening "
        "socket, the kernel spreads connections). More than one needs `ONAIR_BROKER_URL`; on "
        "SQLite they share one writer lock, so use them with PostgreSQL.",
    )
    public_url: str | None = Field(
        None, description="Base URL clients use, printed at start (default http://host:port)."
    )
    data_dir: Path = Field(
        Path("./onair-data"),
        description="Directory for the embedded SQLite database and the generated JWT secret.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; `postgresql://…` for PostgreSQL. "
        "Default: SQLite file `onair.db` in the data dir.",
    )
    database_schema: str | None = Field(
        None, pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema to use (search_path); default: the server's default.",
    )
    broker_url: str | None = Field(
        None, description="`redis://…` to share events between processes; default in-memory."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the JSON logs on stdout."
    )
    log_json: bool = Field(True, description="JSON logs (true) or human-readable console logs.")
    shutdown_timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds a server process has, after SIGTERM/SIGINT, to "
        "stop: it stops accepting, closes realtime sockets with code 1012 (clients reconnect), "
        "lets requests in flight finish, commits queued chat messages and exits. What is still "
        "running then is cancelled. `onair serve --workers` kills a worker this much (plus 5 s) "
        "after asking it to stop.",
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token `GET /metrics` requires (`Authorization: Bearer …`). "
        "Unset: /metrics is public, and a non-loopback `host` logs a warning at start.",
    )
    metrics_sync_interval: float = Field(
        2.0, gt=0, description="With `--workers` > 1: seconds between two copies of a worker's "
        "in-process counters (realtime, chat, tokens, broker) to the files every scrape merges; "
        "a scrape answered by another worker sees them at most this late.",
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest accepted REST request body (bytes) → 413."
    )
    db_pool_size: int = Field(10, ge=1, description="PostgreSQL connection pool size.")
    db_prepared_statements: bool = Field(
        True, description="Use cached prepared statements on PostgreSQL. Set false when the "
        "database is reached through a pooler in transaction mode (PgBouncer, Supavisor port "
        "6543), where they break; not combinable with `ONAIR_DATABASE_SCHEMA`.",
    )

    @field_validator("db_prepared_statements")
    @classmethod
    def _pooler_mode_has_no_schema(cls, value: bool, info: ValidationInfo) -> bool:
        if not value and info.data.get("database_schema"):
            raise ValueError("a pooler in transaction mode cannot keep ONAIR_DATABASE_SCHEMA's "
                             "search_path: use a database of its own instead")
        return value

    db_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for a database lock or connection."
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL"] = Field(
        "NORMAL",
        description="SQLite `synchronous` pragma. NORMAL (WAL) survives a process crash; "
        "FULL also survives power loss.",
    )

    # --- auth ---
    jwt_secret: SecretStr | None = Field(
        None,
        description="HS256 secret of Supabase-compatible JWTs. Default: generated on first run "
        "into `<data_dir>/jwt-secret` (mode 0600).",
    )
    jwks_url: str | None = Field(
        None, description="JWKS URL for asymmetric (RS256/ES256/EdDSA) tokens, checked besides "
        "HS256 (fetched off the event loop, cached; see the `jwks_*` settings)."
    )
    jwks_fetch_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds one JWKS fetch may take in all (off the event "
        "loop); also the longest a request with a new `kid` waits for it before 401.",
    )
    jwks_min_refresh_interval: float = Field(
        30.0, ge=0, description="Least seconds between two JWKS fetches, however many unknown "
        "`kid`s arrive (tokens with one of them meanwhile get 401).",
    )
    jwks_negative_ttl: float = Field(
        30.0, ge=0, description="Seconds a failed JWKS fetch, or a `kid` missing from a fresh "
        "key set, is remembered before it is fetched for again.",
    )
    jwks_max_age: float = Field(
        600.0, gt=0, description="Seconds after which the JWKS is refreshed in the background "
        "(its keys keep working meanwhile).",
    )
    jwks_max_bytes: int = Field(
        262_144, ge=1024, description="Largest JWKS document accepted (bytes).",
    )
    jwt_audience: str = Field("authenticated", description="Required `aud` of user tokens.")
    jwt_cache_size: int = Field(
        10_000, ge=1, description="Verified tokens remembered (so a token is checked once, not on "
        "every request); least recently used first out.",
    )
    jwt_app_role_claim: str = Field(
        "app_metadata.role",
        description="Dotted path of the claim holding the app role "
        "(seller/buyer/moderator/admin); missing → buyer.",
    )
    jwt_leeway: float = Field(5.0, ge=0, description="Seconds of clock skew allowed on `exp`.")
    dev_auth: bool | None = Field(
        None,
        description="Offer `POST /api/v1/auth/dev-sign-in` (anyone may mint any role's token). "
        "Default: on only with SQLite, a loopback `host` and the generated secret (no "
        "`ONAIR_JWT_SECRET`), and then only for local requests (loopback client and Host, no "
        "proxy headers); `true` forces it on (logged as a warning at start), `false` off.",
    )
    dev_token_ttl: int = Field(
        24 * 3600, ge=60, description="Lifetime (s) of tokens minted by dev sign-in."
    )
    anon_key_ttl: int = Field(
        10 * 365 * 24 * 3600, ge=3600, description="Lifetime (s) of the generated anon key."
    )

    # --- streams ---
    stream_title_max_chars: int = Field(200, ge=1, description="Longest stream title.")
    streams_page_max: int = Field(100, ge=1, description="Largest `limit` of GET /streams.")
    transition_retries: int = Field(
        5, ge=0, description="Retries of a stream transition that lost an optimistic-lock race."
    )
    host_grace: float = Field(
        30.0, gt=0, description="Seconds without a host heartbeat before a live stream is "
        "auto-paused (reason host_disconnected).",
    )
    pause_timeout: float = Field(
        600.0, gt=0, description="Seconds a stream may stay paused before it is auto-ended."
    )
    viewer_timeout: float = Field(
        45.0, gt=0, description="Seconds without a viewer heartbeat before the viewer is left."
    )
    heartbeat_interval: float = Field(
        10.0, gt=0, description="Heartbeat interval (s) recommended to clients."
    )
    reaper_interval: float = Field(
        5.0, gt=0, description="Seconds between two reaper passes."
    )
    reaper_lease: float = Field(
        30.0, gt=0, description="Seconds a reaper lease is held; another process takes over "
        "after it lapses.",
    )

    # --- retention (the reaper and `onair prune` delete in short batched transactions) ---
    retention_token_grace: float = Field(
        7 * 86400.0, ge=0, description="Seconds after an Agora token expired before its ledger "
        "row (agora_tokens) is deleted; until then it is still recognised (and shown revoked).",
    )
    retention_viewer_grace: float = Field(
        86400.0, ge=0, description="Seconds after a viewer left a stream before their "
        "stream_viewers row is deleted (a viewer who comes back gets a new row).",
    )
    retention_roster_grace: float = Field(
        86400.0, ge=0, description="Seconds after a stream ended before its uid roster "
        "(stream_uids: which Agora uid each user had) is deleted; an ended stream issues no token.",
    )
    chat_retention_days: float | None = Field(
        None, gt=0, description="Delete the chat of streams that ended more than this many days "
        "ago. Unset: chat is kept forever.",
    )
    retention_batch_size: int = Field(
        1000, ge=1, le=100_000, description="Rows one prune transaction deletes at most (short "
        "transactions: no long locks).",
    )
    retention_batches_per_pass: int = Field(
        20, ge=1, description="Prune transactions one reaper pass runs at most per kind of row "
        "(the rest waits for the next pass; `onair prune` runs until done).",
    )

    # --- tokens ---
    agora_app_id: str | None = Field(None, description="Agora App ID (32 hex chars).")
    agora_app_certificate: SecretStr | None = Field(
        None, description="Agora App Certificate (32 hex chars); never logged or returned."
    )
    agora_token_ttl: int = Field(
        3600, ge=60, le=86_400,
        description="Lifetime (s) of issued RTC/RTM tokens; Agora accepts at most 24 h.",
    )
    agora_privilege_ttl: int = Field(
        3600, ge=60, le=86_400,
        description="Lifetime (s) of the join/publish privileges inside an RTC token "
        "(capped at the token lifetime).",
    )
    agora_refresh_fraction: float = Field(
        0.8, gt=0, le=1,
        description="Clients are told to refresh after this fraction of the token lifetime …",
    )
    agora_refresh_margin: int = Field(
        30, ge=0,
        description="… and at the latest this many seconds before expiry (Agora's "
        "token-privilege-will-expire fires 30 s before).",
    )
    agora_channel_prefix: str = Field(
        "onair-", pattern=r"^[A-Za-z0-9_-]{0,27}$",
        description="Agora channel name = prefix + stream id (lets deployments share a project).",
    )
    agora_token_rate_limit: str = Field(
        "60/minute",
        description="Per-user token issuing limit (`limits` notation, e.g. `60/minute`) → 429 "
        "with Retry-After. Shared through Redis when the broker is Redis.",
    )
    @field_validator("agora_token_rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        from limits import parse

        parse(value)  # raises ValueError with the offending text
        return value

    agora_max_cohosts: int = Field(
        8, ge=0, le=16, description="Co-hosts a seller may invite into one stream."
    )
    agora_uid_cache_size: int = Field(
        100_000, ge=0,
        description="Stable (stream, user) → Agora uid pairs kept in memory (they never change).",
    )
    agora_issue_batch_max: int = Field(
        256, ge=1,
        description="Most token requests written to the ledger in one transaction "
        "(group commit under load).",
    )

    # --- chat ---
    chat_max_chars: int = Field(500, ge=1, description="Longest chat message (characters).")
    chat_edit_window: float = Field(
        300.0, ge=0, description="Seconds after sending during which the sender may edit."
    )
    chat_rate_per_second: float = Field(
        2.0, gt=0, description="Per-user send rate (token bucket refill, messages/s) → 429."
    )
    chat_rate_burst: int = Field(
        10, ge=1, description="Per-user send burst (token bucket size) before the rate applies."
    )
    chat_rate_tracked_users: int = Field(
        100_000, ge=1, description="Senders whose token buckets are kept before full ones "
        "are forgotten (memory bound)."
    )
    chat_batch_max: int = Field(
        500, ge=1, description="Most messages stored by one group commit (one transaction)."
    )
    chat_queue_max: int = Field(
        20_000, ge=1, description="Most sends waiting for their commit before new ones get 503."
    )
    chat_send_timeout: float = Field(
        10.0, gt=0, description="Seconds a send waits for its commit before 503 (retry with "
        "the same client_msg_id)."
    )
    chat_page_default: int = Field(50, ge=1, description="History/resync page size by default.")
    chat_page_max: int = Field(1000, ge=1, description="Largest `limit` of chat history/resync.")
    chat_sanction_max_seconds: int = Field(
        30 * 24 * 3600, ge=1, description="Longest mute or timed ban (seconds)."
    )
    chat_slow_mode_max_seconds: int = Field(
        3600, ge=1, description="Longest slow-mode interval a moderator can set (seconds)."
    )
    showcase_max_products: int = Field(
        50, ge=1, le=500, description="Most products one stream's showcase holds (tray size).")
    showcase_title_max_chars: int = Field(
        200, ge=1, le=500, description="Longest product title in a showcase (characters).")
    showcase_deal_max_seconds: int = Field(
        86400, ge=1, description="Longest flash deal a seller can start (seconds).")

    # --- playback telemetry (POST /api/v1/telemetry) ---
    telemetry_rate_per_second: float = Field(
        0.5, gt=0, description="Telemetry batches per second one client (signed-in user, else IP "
        "or IPv6 /64) may send (token bucket refill; with `--workers N` each worker allows 1/N) "
        "→ 429."
    )
    telemetry_rate_burst: int = Field(
        10, ge=1, description="Telemetry batches one client may send at once before the rate "
        "applies (a page unload sends one more beacon)."
    )
    telemetry_rate_tracked_clients: int = Field(
        100_000, ge=1, description="Telemetry clients whose token buckets are kept before full "
        "ones are forgotten (memory bound)."
    )
    telemetry_max_reports_per_second: float = Field(
        200.0, gt=0, description="Telemetry batches the server counts per second from all "
        "clients together (with `--workers N` each worker counts 1/N); past it batches are "
        "answered 202 but dropped (counted as `overloaded`), so a flood from many addresses "
        "costs bounded work."
    )
    telemetry_max_events: int = Field(
        64, ge=1, le=1000, description="Most events in one telemetry batch → 422."
    )
    telemetry_max_body_bytes: int = Field(
        16 * 1024, ge=512, description="Largest telemetry batch body (bytes) → 413."
    )

    # --- realtime ---
    heartbeat_timeout: float = Field(
        60.0, gt=0, description="Seconds of silence after which a realtime socket is closed."
    )
    realtime_max_channels_per_connection: int = Field(
        100, ge=1, description="Channels one realtime socket may join (`ChannelRateLimitReached`)."
    )
    realtime_max_messages_per_second: int = Field(
        100, ge=1, description="Frames per second per socket; over it the channel is closed "
        "(`Too many messages per second`), over twice it the socket."
    )
    realtime_max_payload_bytes: int = Field(
        262_144, ge=1024, description="Largest broadcast / presence payload (bytes); also bounds "
        "frames and REST broadcasts."
    )
    realtime_max_connections_per_user: int = Field(
        20, ge=1, description="Concurrent realtime sockets per user (HTTP 429 "
        "`Too many connected users` at the upgrade)."
    )
    realtime_max_connections_per_ip: int = Field(
        100, ge=1, description="Concurrent realtime sockets per client IP (IPv6: per /64), signed "
        "in or not (HTTP 429 `Too many connected users` at the upgrade). The IP is the TCP "
        "peer's, or the first `X-Forwarded-For` hop from the right that is not a "
        "`realtime_trusted_proxies` one. Raise it if many viewers share one NAT address."
    )
    realtime_trusted_proxies: list[str] = Field(
        default_factory=list, description="JSON list of proxy IPs/networks (CIDR) whose "
        "`X-Forwarded-For` names the realtime client's IP (for the per-IP cap); empty: the TCP "
        "peer is the client, so behind a proxy every socket counts toward the proxy's IP."
    )
    @field_validator("realtime_trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: list[str]) -> list[str]:
        from onair.realtime.client_ip import trusted_networks

        trusted_networks(value)  # raises ValueError naming the bad entry
        return value

    realtime_max_topic_bytes: int = Field(
        255, ge=16, le=65_536, description="Longest channel topic (UTF-8 bytes, `realtime:` "
        "included); longer joins get `TopicNameTooLong`."
    )
    realtime_max_join_bytes_per_connection: int = Field(
        262_144, ge=4096, description="Bytes of `phx_join` frames one socket's open channels may "
        "hold together (topic, config, bindings, token are kept while joined); past it a join "
        "gets `JoinPayloadTooLarge`."
    )
    realtime_stream_max_payload_bytes: int = Field(
        32_768, ge=1024, description="Largest client broadcast payload on `stream:` channels "
        "(bytes, also REST broadcasts of non-service callers); other channels have "
        "`realtime_max_payload_bytes`."
    )
    realtime_stream_max_presence_bytes: int = Field(
        2_048, ge=256, description="Largest presence track payload on `stream:` channels "
        "(bytes): every joiner receives all of them in `presence_state`."
    )
    realtime_user_bytes_per_second: int = Field(
        65_536, ge=1024, description="Bytes per second of client broadcasts + presence one user "
        "(anonymous: one IP) may send, across sockets and channels; over it broadcasts are "
        "refused (`rate_limit_exceeded`) and tracks get `Client presence rate limit exceeded`."
    )
    realtime_user_burst_bytes: int = Field(
        262_144, ge=1024, description="Burst of `realtime_user_bytes_per_second` (bytes); a "
        "payload larger than the burst is always refused."
    )
    realtime_topic_bytes_per_second: int = Field(
        131_072, ge=1024, description="Bytes per second of client broadcasts + presence one "
        "topic accepts from all its senders (keeps slow viewers from being cut off)."
    )
    realtime_topic_burst_bytes: int = Field(
        524_288, ge=1024, description="Burst of `realtime_topic_bytes_per_second` (bytes)."
    )
    realtime_max_pending_bytes: int = Field(
        1_048_576, ge=65_536, description="Bytes queued for a socket that stopped reading before "
        "it is cut off as a slow consumer."
    )
    realtime_write_buffer_bytes: int = Field(
        262_144, ge=16_384, description="Kernel-side write buffer per socket after which the hub "
        "starts queueing and coalescing (transport high-water mark)."
    )
    realtime_sweep_interval: float = Field(
        1.0, gt=0, description="Seconds between checks for silent sockets and expired tokens."
    )
    realtime_unsubscribe_delay: float = Field(
        5.0, ge=0, description="Seconds a broker topic stays subscribed after its last local "
        "member left."
    )
    cache_ttl: float = Field(
        5.0, ge=0, le=300, description="Seconds a cached stream row or its access facts (seller, "
        "co-hosts, sanctions, ended) are served at most. Every change drops them at once in every "
        "process (broker topic `onair:cache`); the ttl only bounds a drop the broker lost. 0 turns "
        "the cache off."
    )
    cache_max_streams: int = Field(
        10_000, ge=0, description="Streams whose row and access facts are cached per process, "
        "least recently used first out (bounded memory)."
    )
    realtime_policy_cache_size: int = Field(
        10_000, ge=1, description="Streams whose authorization facts (seller, co-hosts, sanctions) "
        "are cached without a local member, and streams remembered as missing; least recently used "
        "first out. Streams with local members are kept (and updated from their events) besides."
    )
    realtime_policy_cache_ttl: float = Field(
        1.0, ge=0, le=60, description="Seconds the authorization facts of a stream without local "
        "members (REST broadcasts) are reused before they are read again."
    )
    realtime_policy_missing_ttl: float = Field(
        5.0, ge=0, le=300, description="Seconds a `stream:` topic naming no stream is remembered "
        "as missing, so random topics cost one database read, not one per request."
    )
    realtime_policy_refresh_interval: float = Field(
        30.0, gt=0, le=3600, description="Seconds after which the authorization facts of a stream "
        "with local members are read again, besides the events that keep them fresh (events are "
        "best effort: a lost one is corrected this late at most)."
    )
    realtime_max_bindings_per_join: int = Field(
        10, ge=1, description="postgres_changes bindings one channel join may hold; the rest are "
        "refused with a `system` error."
    )
    realtime_filter_budget_per_connection: int = Field(
        2000, ge=10, description="Total cost of the postgres_changes filters one socket holds "
        "across its channels (1 per condition, the list length per `in`, the RE2 program size "
        "per pattern); bindings past it are refused. Bounds the work one socket adds per row."
    )
    realtime_filter_max_chars: int = Field(
        4096, ge=64, description="Longest postgres_changes `filter` string (characters)."
    )
    realtime_filter_max_conditions: int = Field(
        10, ge=1, description="Conditions (comma-separated) in one postgres_changes `filter`."
    )
    realtime_filter_max_in_values: int = Field(
        100, ge=1, description="Values in one `in.(...)` filter condition."
    )
    realtime_filter_max_pattern_chars: int = Field(
        256, ge=1, description="Longest `like`/`ilike`/`match`/`imatch` filter pattern (characters)."
    )
    realtime_filter_max_regex_size: int = Field(
        500, ge=10, description="Largest compiled filter pattern (RE2 program size, roughly the "
        "matching cost per character of a row); larger ones are refused as too complex."
    )
    realtime_filter_regex_max_mem: int = Field(
        262_144, ge=65_536, description="Memory RE2 may use for one compiled filter pattern "
        "(program and matching cache, bytes)."
    )
    realtime_ended_close_delay: float = Field(
        2.0, ge=0, le=60, description="Seconds after a stream's final `stream_state` (ended) "
        "before its realtime channels are closed (`system` \"The stream has ended\" then "
        "`phx_close`), so the final state and the last chat rows arrive first. Channels joined "
        "to an ended stream later are closed the same way at the next sweep.",
    )
    reactions_window: float = Field(
        0.25, ge=0.05, le=5, description="Seconds of viewers' reaction taps counted into one "
        "`reactions` broadcast per stream (the fan-out is one message per window whatever the "
        "number of reactors)."
    )
    reactions_per_second: float = Field(
        5.0, gt=0, le=100, description="Reaction taps a user may send per second (refill of the "
        "per-user bucket); excess taps are dropped silently and counted in "
        "`onair_reactions_taps_total{outcome=\"rate_limited\"}`."
    )
    reactions_burst: int = Field(
        10, ge=1, le=1000, description="Burst of `reactions_per_second` (taps)."
    )
    reactions_max_users: int = Field(
        100_000, ge=100, description="Users whose reaction rate is tracked per process (least "
        "recently seen forgotten first)."
    )
    reactions_max_streams: int = Field(
        10_000, ge=10, description="Streams with reactions counted per process and window."
    )
    realtime_chat_reorder_wait: float = Field(
        0.5, gt=0, le=10, description="With a Redis broker (several processes): seconds a chat "
        "row that arrives ahead of a missing seq waits for it before it is delivered anyway."
    )
    realtime_join_subscribe_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds a channel join waits for its broker subscription "
        "(Redis); past it, or with the broker link down, the join is refused with "
        "`BrokerUnavailable` and the client retries with backoff."
    )

    # --- web ---
    ice_servers: list[dict[str, Any]] = Field(
        default_factory=list,
        description="JSON list of RTCIceServer objects for the local WebRTC mode (none needed "
        "on one host).",
    )
    web_reconnect_base: float = Field(
        0.5, gt=0, description="Browser clients: first reconnect backoff ceiling (s); retry n "
        "waits a random time in [0, min(cap, base·2^n)) (full jitter).",
    )
    web_reconnect_cap: float = Field(
        15.0, gt=0, description="Browser clients: largest reconnect backoff ceiling (s).",
    )
    web_reconnect_attempts: int = Field(
        8, ge=1, description="Browser clients: fast reconnects (backoff) before the page says "
        "'can't reach the server' and falls back to the slow retry.",
    )
    web_reconnect_slow: float = Field(
        30.0, gt=0, description="Browser clients: once the reconnect attempts are spent (or the "
        "browser is offline), one more try every this many seconds; the page counts down to it.",
    )
    web_media_timeout: float = Field(
        20.0, gt=0, description="Browser clients: a live stream's video that has not started "
        "after this many seconds is shown as an error with its reason and 'Try again' instead of "
        "an endless 'Connecting…'.",
    )
    web_agora_join_timeout: float = Field(
        12.0, gt=0, description="Browser clients, Agora mode: give up joining Agora's channel "
        "after this many seconds (the SDK alone retries for ever without a route to Agora) and "
        "say the video service can't be reached.",
    )
    web_rtt_degraded: float = Field(
        0.3, gt=0, description="Browser clients: realtime heartbeat round trip (s) from which "
        "the link counts as degraded.",
    )
    web_rtt_poor: float = Field(
        1.0, gt=0, description="Browser clients: heartbeat round trip (s) from which the link "
        "counts as poor (video drops to the low layer first).",
    )
    web_realtime_heartbeat: float = Field(
        15.0, gt=0, description="Browser clients: seconds between realtime heartbeats.",
    )
    web_realtime_heartbeat_timeout: float = Field(
        10.0, gt=0, description="Browser clients: an unanswered realtime heartbeat after this "
        "many seconds means the socket is dead (reconnect).",
    )
    web_chat_poll: float = Field(
        3.0, gt=0, description="Browser clients: chat polling interval (s) over REST while the "
        "realtime socket is down.",
    )
    web_chat_verify: float = Field(
        30.0, gt=0, description="Browser clients: interval (s) of the cheap chat check that "
        "catches a lost last event while connected.",
    )
    web_content_security_policy: str | None = Field(
        None, description="Content-Security-Policy of the pages, replacing the built-in one "
        "(same origin only; plus Agora's SDK CDN and servers in Agora mode).",
    )
    web_image_sources: str = Field(
        "https:", pattern=r"^[A-Za-z0-9:/.*\- ]*$",
        description="Extra CSP img-src sources (space-separated) for showcase product images; "
        "'https:' allows any https image host, '' only this server's own images.",
    )
    web_local_max_viewers: int = Field(
        8, ge=1, description="Local WebRTC mode: most viewers one studio browser sends video to "
        "(each costs the seller's upload bandwidth). One user holds at most two of them (a further "
        "tab replaces their oldest) and an offer not connected within 20 s gives its slot back.",
    )

    # --- broker ---
    broker_key_prefix: str = Field(
        "onair:", description="Prefix of every Redis channel and key onair uses (lets several "
        "deployments share one Redis)."
    )
    broker_connect_timeout: float = Field(
        2.0, gt=0, description="Seconds to wait for a Redis connection or a PING answer."
    )
    broker_reconnect_min: float = Field(
        0.05, gt=0, description="First delay (seconds) before reconnecting to Redis; doubles "
        "per failed attempt (jittered)."
    )
    broker_reconnect_max: float = Field(
        2.0, gt=0, description="Longest delay (seconds) between Redis reconnect attempts."
    )
    broker_health_interval: float = Field(
        5.0, gt=0, description="Seconds between PINGs on the Redis pub/sub link; a link that "
        "does not answer within one interval is reconnected."
    )
    presence_ttl: float = Field(
        15.0, gt=0, description="Seconds after its last presence heartbeat that a crashed "
        "process's presence members disappear (shared presence via Redis)."
    )
    presence_heartbeat_interval: float = Field(
        5.0, gt=0, description="Seconds between presence heartbeats; keep well below "
        "`presence_ttl`."
    )

    # --- derived ---
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'onair.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def binds_loopback(self) -> bool:
        return is_loopback_host(self.host)

    @property
    def dev_auth_enabled(self) -> bool:
        if self.dev_auth is not None:
            return self.dev_auth
        return self.is_sqlite and self.binds_loopback and self.jwt_secret is None

    def dev_auth_warning(self) -> tuple[str, str] | None:
        """(level, message) to log at start when dev sign-in was switched on explicitly."""
        if not self.dev_auth:
            return None
        exposed = [reason for reason, applies in (
            (f"the server binds {self.host}, not a loopback address", not self.binds_loopback),
            (("ONAIR_JWT_SECRET is configured: the minted tokens are trusted by everything "
              "that shares that secret"), self.jwt_secret is not None)) if applies]
        if exposed:
            return "error", ("ONAIR_DEV_AUTH=true: anyone who can reach this server can mint an "
                             "admin token, and " + "; ".join(exposed) + ". Never do this in "
                             "production.")
        return "warning", ("ONAIR_DEV_AUTH=true: dev sign-in is on; anyone who can reach this "
                           "server can mint an admin token.")

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (what `onair serve --host` may be given)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_table() -> str:
    """The README's configuration table, generated so docs and code cannot drift."""

    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "—" if default is None else f"`{default}`"
        rows.append(f"| `ONAIR_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
