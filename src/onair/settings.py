"""Every knob of onair, read from ``ONAIR_*`` environment variables and a ``.env`` file.

Every timeout, interval and limit lives here with a default and a description; the README's
configuration table is generated from these descriptions (``python -m onair.settings``), so a
setting without a description is a bug.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ONAIR_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- service ---
    host: str = Field("127.0.0.1", description="Address `onair serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port for REST, realtime and pages.")
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
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest accepted REST request body (bytes) → 413."
    )
    db_pool_size: int = Field(10, ge=1, description="PostgreSQL connection pool size.")
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
        None, description="JWKS URL for asymmetric (RS256/ES256) tokens, checked besides HS256."
    )
    jwt_audience: str = Field("authenticated", description="Required `aud` of user tokens.")
    jwt_app_role_claim: str = Field(
        "app_metadata.role",
        description="Dotted path of the claim holding the app role "
        "(seller/buyer/moderator/admin); missing → buyer.",
    )
    jwt_leeway: float = Field(5.0, ge=0, description="Seconds of clock skew allowed on `exp`.")
    dev_auth: bool | None = Field(
        None,
        description="Offer `POST /api/v1/auth/dev-sign-in`. Default: on with SQLite, off with "
        "PostgreSQL.",
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

    # --- tokens ---
    agora_app_id: str | None = Field(None, description="Agora App ID (32 hex chars).")
    agora_app_certificate: SecretStr | None = Field(
        None, description="Agora App Certificate (32 hex chars); never logged or returned."
    )

    # --- chat ---
    chat_max_chars: int = Field(500, ge=1, description="Longest chat message (characters).")

    # --- realtime ---
    heartbeat_timeout: float = Field(
        60.0, gt=0, description="Seconds of silence after which a realtime socket is closed."
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
        8, ge=1, description="Browser clients: failed reconnects before the page shows a "
        "'can't reach the server' notice with a retry button.",
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
    web_local_max_viewers: int = Field(
        8, ge=1, description="Local WebRTC mode: most viewers one studio browser sends video to "
        "(each costs the seller's upload bandwidth).",
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
    def dev_auth_enabled(self) -> bool:
        return self.is_sqlite if self.dev_auth is None else self.dev_auth

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


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
