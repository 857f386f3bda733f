"""TokenService: Agora RTC/RTM tokens for streams, co-hosts, revocation and our own token check.

Issuing runs through a group commit (`GroupCommit`): the role is decided, the token built and
its ledger row written inside one write transaction shared by every request queued meanwhile.
Deciding and recording in the same transaction is what makes revocation exact: a demotion or a
stream end either commits before (we see it and issue a subscriber token / refuse) or after (its
revoking UPDATE sees our row). On PostgreSQL the issuing transaction holds FOR SHARE locks on
the stream and co-host rows it read; on SQLite the single writer serialises everything.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

import structlog
from limits import parse as parse_rate
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from redis.exceptions import RedisError

from onair import problems
from onair.domain import accesstoken2 as at2
from onair.domain import streams as stream_rules
from onair.domain.clock import Clock
from onair.domain.fixed_window import FixedWindowCounter
from onair.domain.identity import Principal
from onair.domain.ids import is_uuid, uuid7
from onair.domain.streams import Status
from onair.domain.token_policy import (
    MAX_UID,
    Lifetimes,
    SaltSequence,
    Schedule,
    TokenRole,
    channel_name,
    entitled_role,
    granted_role,
    schedule,
)
from onair.errors import Problem
from onair.group_commit import GroupCommit
from onair.services.events import EventPublisher, broadcast_event, row_event
from onair.services.stream_cache import StreamCache
from onair.services.streams import (
    StreamService,
    existing_stream,
    not_owner,
    require_signed_in,
    stream_not_found,
)
from onair.settings import Settings
from onair.store import tokens as store
from onair.store.db import Database
from onair.tally import bump
from onair.topics import StreamBroadcast

log = structlog.get_logger("onair.tokens")

Kind = Literal["rtc", "rtm"]
COHOSTS_TABLE = "stream_cohosts"
UID_ALLOCATION_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class IssueRequest:
    stream_id: str
    user_id: str
    kind: Kind
    requested: TokenRole | None
    refresh: bool


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    app_id: str
    channel: str
    uid: int
    role: TokenRole
    kind: Kind
    stream_id: str
    issued_at: datetime
    expires_at: datetime
    refresh_after: datetime
    previous_role: TokenRole | None


@dataclass(frozen=True, slots=True)
class AgoraCredentials:
    app_id: str
    certificate: str

    def __repr__(self) -> str:  # never print the certificate
        return f"AgoraCredentials(app_id={self.app_id!r}, certificate=***)"


def credentials_of(settings: Settings) -> AgoraCredentials | None:
    cert = settings.agora_app_certificate
    cert_value = cert.get_secret_value() if cert is not None else None
    if not at2.is_hex32(settings.agora_app_id) or not at2.is_hex32(cert_value):
        return None
    assert settings.agora_app_id is not None and cert_value is not None
    return AgoraCredentials(settings.agora_app_id, cert_value)


def not_configured() -> Problem:
    return problems.AGORA_NOT_CONFIGURED(
        "this server has no Agora credentials, so it cannot issue or check Agora tokens",
        hint="set ONAIR_AGORA_APP_ID and ONAIR_AGORA_APP_CERTIFICATE (32 hex characters each, "
        "from the Agora console); without them the pages use the local WebRTC mode",
    )


def stream_ended(stream_id: str) -> Problem:
    return problems.STREAM_ENDED("an ended stream gets no new tokens", stream_id=stream_id)


def _at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


class IssueLimiter:
    """Per-user token issuing limit → 429 with Retry-After: a fixed window, in Redis (`limits`)
    when the broker is Redis, else in this process (``domain.fixed_window``, the same rule).

    A fixed window, not a moving one: limits' async in-memory moving window costs ~240 us per
    hit here (a thread hop per key on expiry) against ~40 us, and an abuse limit does not need
    the precision (a burst can reach twice the limit across a window boundary). Not `limits`'
    in-memory storage either: after every hit it walked every user still in a window, so a
    token request cost grew with the audience (821 µs at 10,000 users, 22 µs at 100).
    """

    def __init__(self, rate: str, broker_url: str | None, timeout: float = 2.0,
                 max_tracked: int = 10_000) -> None:
        self._item = parse_rate(rate)
        self._storage: Any = None
        self._limiter: FixedWindowRateLimiter | None = None
        self._local: FixedWindowCounter | None = None
        if broker_url and broker_url.startswith(("redis://", "rediss://")):
            # Bounded: a Redis that does not answer must not hold token requests indefinitely.
            self._storage = storage_from_string("async+" + broker_url, implementation="redispy",
                                                socket_timeout=timeout,
                                                socket_connect_timeout=timeout)
            self._limiter = FixedWindowRateLimiter(self._storage)  # type: ignore[arg-type]
        else:
            self._local = FixedWindowCounter(self._item.amount, self._item.get_expiry(),
                                             max_tracked)
        self._unavailable_logged = float("-inf")

    async def check(self, user_id: str) -> None:
        """Raise 429 over the limit. Fails closed: while the shared limit (Redis) is out of
        reach, tokens are refused with a 503 ``rate-limit-unavailable`` and Retry-After (a
        token grants media access; issuing them unmetered is not a degraded mode we offer),
        said in the logs once a minute."""
        if self._local is not None:
            now = time.monotonic()
            hit = self._local.hit(user_id, now)
            if hit.allowed:
                return
            self._refuse(hit.resets_at - now)
        assert self._limiter is not None
        try:
            if await self._limiter.hit(self._item, "agora-tokens", user_id):
                return
            stats = await self._limiter.get_window_stats(self._item, "agora-tokens", user_id)
        except (RedisError, OSError) as exc:  # redis-py's ConnectionError is not an OSError
            now = time.monotonic()
            if now - self._unavailable_logged >= 60:
                self._unavailable_logged = now
                log.warning("token_rate_limit_unavailable", error=type(exc).__name__,
                            detail=str(exc)[:200])
            raise problems.RATE_LIMIT_UNAVAILABLE(
                "The shared rate limit did not answer; retry shortly.",
                headers={"Retry-After": "1"}, retry_after=1) from None
        self._refuse(stats.reset_time - time.time())

    def _refuse(self, resets_in: float) -> NoReturn:
        retry = max(1, math.ceil(resets_in))
        raise problems.RATE_LIMITED(f"at most {self._item} per user; retry in {retry} s",
                                    title="Too many token requests",
                                    headers={"Retry-After": str(retry)}, retry_after=retry)

    async def close(self) -> None:
        # limits has no public close; its Redis storage keeps the redis-py client on a bridge.
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()


class UidCache:
    """(stream, user) → uid pairs already committed; they never change, so never go stale.
    Least recently used first out: pairs of ended streams (never looked up again) leave first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[store.Pair, int] = OrderedDict()

    def get(self, pair: store.Pair) -> int | None:
        uid = self._items.get(pair)
        if uid is not None:
            self._items.move_to_end(pair)
        return uid

    def __len__(self) -> int:
        return len(self._items)

    def put(self, pairs: dict[store.Pair, int]) -> None:
        if self._size <= 0:
            return
        self._items.update(pairs)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


class TokenService:
    def __init__(self, db: Database, events: EventPublisher, clock: Clock,
                 settings: Settings, streams: StreamService | None = None) -> None:
        self._db = db
        self._events = events
        self._clock = clock
        self._settings = settings
        # the stream cache: early refusals of unknown and ended streams, dropped on co-host changes
        self._streams = streams
        self._cache = streams.cache if streams is not None else StreamCache(None, ttl=0,
                                                                            max_streams=0)
        self._credentials = credentials_of(settings)
        self._lifetimes = Lifetimes(
            token_ttl=settings.agora_token_ttl,
            privilege_ttl=settings.agora_privilege_ttl,
            refresh_fraction=settings.agora_refresh_fraction,
            refresh_margin=settings.agora_refresh_margin,
        )
        self._salts = SaltSequence(secrets.randbelow(at2.MAX_SALT) + 1)
        self._uids = UidCache(settings.agora_uid_cache_size)
        self._limiter = IssueLimiter(settings.agora_token_rate_limit, settings.broker_url,
                                     settings.broker_connect_timeout)
        self._issuer: GroupCommit[IssueRequest, IssuedToken] = GroupCommit(
            self._issue_batch, settings.agora_issue_batch_max
        )
        # plain counters for /metrics
        self.issued: dict[str, int] = {}  # role -> tokens
        self.refused: dict[str, int] = {}  # problem type -> requests
        self.revoked: dict[str, int] = {}  # reason -> tokens (stream ends count in streams)

    @property
    def issuer(self) -> GroupCommit[IssueRequest, IssuedToken]:
        return self._issuer

    @property
    def configured(self) -> bool:
        return self._credentials is not None

    def _require_credentials(self) -> AgoraCredentials:
        if self._credentials is None:
            raise not_configured()
        return self._credentials

    def channel(self, stream_id: str) -> str:
        return channel_name(self._settings.agora_channel_prefix, stream_id)

    # --- issuing -------------------------------------------------------------------------

    async def issue(self, principal: Principal, stream_id: str, kind: Kind, *,
                    requested: TokenRole | None = None, refresh: bool = False) -> IssuedToken:
        try:
            user_id = require_signed_in(principal)
            self._require_credentials()
            if not is_uuid(stream_id):
                raise stream_not_found(stream_id)
            await self._limiter.check(user_id)
            if self._cache.enabled:
                await self._refuse_cached(stream_id)
            issued = await self._issuer.submit(IssueRequest(stream_id, user_id, kind, requested,
                                                            refresh))
        except Problem as problem:
            bump(self.refused, problem.type)
            raise
        bump(self.issued, issued.role.value)
        return issued

    async def _refuse_cached(self, stream_id: str) -> None:
        """Unknown and ended streams are refused without a transaction. Both are safe to answer
        from the cache: an ended stream stays ended, and a stream's creation drops its entry.
        Every other decision is made again in the issuing transaction (see the docstring)."""
        assert self._streams is not None
        access = await self._streams.access(stream_id)
        if access is None:
            raise stream_not_found(stream_id)
        if access.ended:
            raise stream_ended(stream_id)

    async def _issue_batch(self, requests: list[IssueRequest]) -> list[IssuedToken | Exception]:
        credentials = self._require_credentials()
        now = int(self._clock.now().timestamp())  # the server's clock, never the client's
        plan = schedule(now, self._lifetimes)
        results: list[IssuedToken | Exception] = []
        rows: list[dict[str, Any]] = []
        async with self._db.write() as conn:
            facts = await store.stream_facts(conn, {r.stream_id for r in requests})
            # an ended stream gets no token: no uid allocated or cached for it either
            pairs = {(r.stream_id, r.user_id) for r in requests
                     if r.stream_id in facts and facts[r.stream_id].status != Status.ENDED}
            cohosts = await store.cohost_pairs(conn, pairs)
            uids = await self._uids_for(conn, pairs)
            for request in requests:
                stream = facts.get(request.stream_id)
                if stream is None:
                    results.append(stream_not_found(request.stream_id))
                    continue
                if stream.status == Status.ENDED:
                    results.append(stream_ended(request.stream_id))
                    continue
                pair = (request.stream_id, request.user_id)
                previous = None
                if request.refresh:
                    found = await store.latest_role(conn, *pair, request.kind)
                    previous = TokenRole(found) if found is not None else None
                issued = self._build(credentials, request, stream, pair in cohosts, uids[pair],
                                     plan, previous)
                if isinstance(issued, Exception):
                    results.append(issued)
                    continue
                results.append(issued)
                rows.append({
                    "id": uuid7(self._clock.now()),
                    "stream_id": request.stream_id,
                    "user_id": request.user_id,
                    "uid": issued.uid,
                    "role": issued.role.value,
                    "kind": issued.kind,
                    "token_sha256": hashlib.sha256(issued.token.encode()).hexdigest(),
                    "issued_at": issued.issued_at,
                    "expires_at": issued.expires_at,
                })
            await store.insert_tokens(conn, rows)
        self._uids.put(uids)  # committed now
        return results

    def _build(self, credentials: AgoraCredentials, request: IssueRequest,
               stream: store.StreamFacts, is_cohost: bool, uid: int, plan: Schedule,
               previous: TokenRole | None) -> IssuedToken | Exception:
        channel = self.channel(request.stream_id)
        if request.kind == "rtm":
            role = TokenRole.RTM
            token = at2.build_rtm_token(
                credentials.app_id, credentials.certificate, str(uid),
                expire=plan.privilege_expire, issue_ts=plan.issued_at, salt=self._salts(),
            )
        else:
            entitled = entitled_role(request.user_id, stream.seller_id, is_cohost)
            granted = granted_role(entitled, request.requested)
            if granted is None:
                return problems.NOT_A_PUBLISHER(
                    "only the stream's seller and its invited co-hosts get publisher tokens",
                    stream_id=request.stream_id)
            role = granted
            token = at2.build_rtc_token(
                credentials.app_id, credentials.certificate, channel, uid, role.rtc,
                token_expire=plan.token_expire, privilege_expire=plan.privilege_expire,
                issue_ts=plan.issued_at, salt=self._salts(),
            )
        return IssuedToken(
            token=token, app_id=credentials.app_id, channel=channel, uid=uid, role=role,
            kind=request.kind, stream_id=request.stream_id, issued_at=_at(plan.issued_at),
            expires_at=_at(plan.expires_at), refresh_after=_at(plan.refresh_after),
            previous_role=previous,
        )

    async def _uids_for(self, conn: Any, pairs: set[store.Pair]) -> dict[store.Pair, int]:
        """The stable uid of each pair, allocating random ones for newcomers."""
        found: dict[store.Pair, int] = {}
        for pair in pairs:
            cached = self._uids.get(pair)
            if cached is not None:
                found[pair] = cached
        missing = pairs - found.keys()
        if missing:
            found.update(await store.uids_of(conn, missing))
        for _ in range(UID_ALLOCATION_ATTEMPTS):
            missing = pairs - found.keys()
            if not missing:
                return found
            # Random, not sequential: uids are visible to every viewer of a channel and should
            # not count the audience. A clash with a uid taken in the stream is skipped by the
            # insert and retried with a new draw.
            await store.insert_uids_if_absent(conn, [
                {"stream_id": s, "user_id": u, "uid": secrets.randbelow(MAX_UID) + 1}
                for s, u in sorted(missing)
            ])
            found.update(await store.uids_of(conn, missing))
        raise RuntimeError("could not allocate a stable Agora uid")

    # --- co-hosts ------------------------------------------------------------------------

    async def cohosts(self, stream_id: str) -> list[dict[str, Any]]:
        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        async with self._db.read() as conn:
            await existing_stream(conn, stream_id)
            return [store.record(row) for row in await store.cohosts_of(conn, stream_id)]

    async def invite(self, principal: Principal, stream_id: str,
                     user_id: str) -> tuple[dict[str, Any], bool]:
        """Make `user_id` a co-host (publisher). Returns (co-host record, created)."""
        actor = require_signed_in(principal)
        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        now = self._clock.now()
        async with self._cache.changing(stream_id, row=False), self._db.write() as conn:
            stream = await existing_stream(conn, stream_id, lock=True)
            if not stream_rules.may_control(principal, stream):
                raise not_owner()
            if stream.status is Status.ENDED:
                raise stream_ended(stream_id)
            if user_id == stream.seller_id:
                raise problems.ALREADY_HOST("the seller publishes already; invite someone else")
            existing = await store.get_cohost(conn, stream_id, user_id)
            if existing is not None:
                return store.record(existing), False
            if await store.count_cohosts(conn, stream_id) >= self._settings.agora_max_cohosts:
                raise problems.TOO_MANY_COHOSTS(
                    f"a stream has at most {self._settings.agora_max_cohosts} co-hosts",
                    limit=self._settings.agora_max_cohosts)
            record = await store.insert_cohost(conn, stream_id, user_id, actor, now)
        await self._events.publish(
            stream_id,
            row_event(COHOSTS_TABLE, "INSERT", record, None, now),
            self._renew_event(stream_id, user_id, "promoted", TokenRole.PUBLISHER, 0),
        )
        return record, True

    async def demote(self, principal: Principal, stream_id: str, user_id: str) -> int:
        """Remove a co-host; revoke their publisher tokens. Returns how many were revoked.

        The seller (or staff) may demote anyone; a co-host may step down by themselves.
        """
        actor = require_signed_in(principal)
        if not is_uuid(stream_id):
            raise stream_not_found(stream_id)
        now = self._clock.now()
        async with self._cache.changing(stream_id, row=False), self._db.write() as conn:
            stream = await existing_stream(conn, stream_id, lock=True)
            if not stream_rules.may_control(principal, stream) and actor != user_id:
                raise not_owner()
            existing = await store.get_cohost(conn, stream_id, user_id)
            if existing is None:
                raise problems.COHOST_NOT_FOUND(f"{user_id!r} is not a co-host of this stream",
                                                user_id=user_id)
            await store.delete_cohost(conn, stream_id, user_id)
            revoked = await store.revoke_user_tokens(
                conn, stream_id, user_id, TokenRole.PUBLISHER.value, now, "demoted"
            )
        bump(self.revoked, "demoted", revoked)
        await self._events.publish(
            stream_id,
            row_event(COHOSTS_TABLE, "DELETE", None, store.record(existing), now),
            self._renew_event(stream_id, user_id, "demoted", TokenRole.SUBSCRIBER, revoked),
        )
        return revoked

    @staticmethod
    def _renew_event(stream_id: str, user_id: str, reason: str, role: TokenRole,
                     revoked: int) -> StreamBroadcast:
        # Tells that user's client to fetch a new token now (POST …/rtc-token/refresh) and, on
        # demotion, to stop publishing: Agora itself keeps honouring the old token.
        return broadcast_event(stream_id, "token_renew", {
            "user_id": user_id, "reason": reason, "role": role.value, "revoked": revoked,
        })

    # --- our own check -------------------------------------------------------------------

    async def verify(self, principal: Principal, token: str, *, channel: str | None = None,
                     uid: int | str | None = None,
                     require_publisher: bool = False) -> dict[str, Any]:
        """Is this a live token we issued? Agora's checks plus the ledger (revocation)."""
        if not principal.is_staff:
            raise problems.FORBIDDEN(
                "token verification is for edge services (service key) and staff")
        credentials = self._require_credentials()
        now = int(self._clock.now().timestamp())
        try:
            parsed = at2.verify(token, app_id=credentials.app_id,
                                app_certificate=credentials.certificate, now=now, canonical=True)
        except at2.TokenRejected as rejected:
            return {"valid": False, "reason": rejected.reason.value, "detail": rejected.detail}
        async with self._db.read() as conn:
            row = await store.token_by_hash(conn, hashlib.sha256(token.encode()).hexdigest())
        if row is None:
            return {"valid": False, "reason": "unknown-token",
                    "detail": "signed with our certificate but not in our ledger"}
        facts = {
            "stream_id": row.stream_id, "user_id": row.user_id, "uid": int(row.uid),
            "role": row.role, "kind": row.kind, "channel": self.channel(row.stream_id),
            "issued_at": row.issued_at, "expires_at": row.expires_at,
            "revoked_at": row.revoked_at, "revoke_reason": row.revoke_reason,
        }
        if row.revoked_at is not None:
            return {"valid": False, "reason": "revoked",
                    "detail": f"revoked ({row.revoke_reason}); Agora may still accept it until "
                    "it expires", **facts}
        if channel is not None or uid is not None or require_publisher:
            service = parsed.token.service(at2.ServiceType.RTC)
            token_channel, token_uid = service.fields if service is not None else (None, None)
            try:
                at2.verify_rtc(
                    token, app_id=credentials.app_id, app_certificate=credentials.certificate,
                    channel=channel if channel is not None else str(token_channel),
                    uid=uid if uid is not None else (token_uid or 0), now=now,
                    required=at2.PUBLISHER_PRIVILEGES if require_publisher
                    else at2.SUBSCRIBER_PRIVILEGES,
                )
            except at2.TokenRejected as rejected:
                return {"valid": False, "reason": rejected.reason.value,
                        "detail": rejected.detail, **facts}
            except ValueError:  # the expected uid itself is not a uid
                return {"valid": False, "reason": at2.Reason.WRONG_UID.value,
                        "detail": "expected uid is not a valid Agora uid", **facts}
        return {"valid": True, "reason": None, "detail": None, **facts}

    async def close(self) -> None:
        await self._issuer.close()
        await self._limiter.close()
