"""Asymmetric signing keys from a JWKS URL, fetched off the event loop.

Token checks are synchronous and sit on hot paths, so a key is only ever looked up in memory:
a known ``kid`` is a dict hit. A ``kid`` we do not hold starts (at most) one background fetch
and is refused for now (:class:`KeyNotCached`); callers that can wait await :meth:`JwksCache.wait`,
which waits for that same fetch for at most the fetch timeout. The fetch itself is bounded in
time and size, fetches are at least ``min_interval`` apart (however many unknown kids arrive),
a failed fetch and a kid missing from a fresh key set are remembered for ``negative_ttl``, and a
key set older than ``max_age`` is refreshed in the background while its keys keep working.
(The same policy as jose's ``createRemoteJWKSet``: cooldown 30 s, max age 10 min.)

A key is used only with the algorithm its type is for — RS256 ↔ RSA, ES256 ↔ EC P-256,
EdDSA ↔ OKP Ed25519/Ed448 — and symmetric (``oct``) keys from the URL are never used: HS256
tokens are checked against the configured secret only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import orjson

log = logging.getLogger("onair.auth")

ALGORITHMS: dict[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
# Kids remembered as missing: an attacker can make up any number, so the memory is bounded.
MAX_REMEMBERED_KIDS = 1024


class KeyUnavailable(Exception):
    """No usable key for this kid/alg (unknown, wrong type, or the key set cannot be had)."""


class KeyNotCached(KeyUnavailable):
    """The kid is not in memory; a fetch may bring it (see :meth:`JwksCache.wait`)."""

    def __init__(self, kid: str) -> None:
        super().__init__(kid)
        self.kid = kid


@dataclass(frozen=True, slots=True)
class SigningKey:
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own `alg`, if it names one
    key: Any

    def accepts(self, alg: str) -> bool:
        wanted = ALGORITHMS.get(alg)
        if wanted is None or self.kty != wanted[0]:
            return False
        if wanted[1] is not None and self.crv not in wanted[1]:
            return False
        return self.alg is None or self.alg == alg


def parse_key_set(body: bytes) -> dict[str, SigningKey]:
    """The usable signing keys of a JWKS document by kid; raises if it is not one."""
    document = orjson.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise TypeError("not a JWK set")
    keys: dict[str, SigningKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        try:
            parsed = jwt.PyJWK(entry)
        except Exception:  # noqa: BLE001, S112 — one bad key must not hide the others
            continue
        alg = entry.get("alg")
        keys[entry["kid"]] = SigningKey(entry["kty"], entry.get("crv"),
                                        alg if isinstance(alg, str) else None, parsed.key)
    return keys


Fetch = Callable[[], Awaitable[bytes]]


class JwksCache:
    def __init__(self, url: str, *, fetch_timeout: float = 5.0, min_interval: float = 30.0,
                 negative_ttl: float = 30.0, max_age: float = 600.0, max_bytes: int = 262_144,
                 clock: Callable[[], float] = time.monotonic, fetch: Fetch | None = None) -> None:
        self.url = url
        self.fetch_timeout = fetch_timeout
        self.min_interval = min_interval
        self.negative_ttl = negative_ttl
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._clock = clock
        self._fetch = fetch or self._http_get
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at = float("-inf")
        self._failed_until = float("-inf")
        self._missing: OrderedDict[str, float] = OrderedDict()  # kid → refused until
        self._wanted: set[str] = set()
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0
        # Called when a refresh drops keys (retired or revoked): tokens verified with them and
        # cached by their verifier must stop working now, not at their expiry.
        self.on_keys_dropped: Callable[[], None] | None = None

    # -- lookups ------------------------------------------------------------------------------------

    def key(self, kid: str, alg: str) -> Any:
        """The verification key, from memory only. Raises KeyNotCached (a fetch may have been
        started) or KeyUnavailable (a key of another type or algorithm)."""
        found = self._keys.get(kid)
        if found is None:
            self._refresh(want=kid)
            raise KeyNotCached(kid)
        if self._fetched_at is not None and self._clock() - self._fetched_at > self.max_age:
            self._refresh()
        if not found.accepts(alg):
            raise KeyUnavailable(f"key {kid!r} is not a key for {alg}")
        return found.key

    async def wait(self, kid: str) -> None:
        """Wait (at most the fetch timeout) for a fetch that may bring ``kid``; never raises."""
        task = self._refresh(want=kid)
        if task is None:
            return
        try:  # shielded: a caller that gives up does not cancel the fetch others wait for
            await asyncio.wait_for(asyncio.shield(task), self.fetch_timeout)
        except TimeoutError:
            pass

    def start(self) -> None:
        """Fetch the key set in the background (at startup: the first tokens are then hits)."""
        self._refresh()

    async def close(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- fetching -----------------------------------------------------------------------------------

    def _refresh(self, want: str | None = None) -> asyncio.Task[None] | None:
        """The fetch in flight, or a new one if the rate limits allow; None otherwise."""
        now = self._clock()
        if want is not None:
            until = self._missing.get(want)
            if until is not None and until > now:
                return None
        if self._inflight is not None and not self._inflight.done():
            self._remember_wanted(want)
            return self._inflight
        if now < self._failed_until or now - self._attempted_at < self.min_interval:
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None  # no event loop (a synchronous caller): nothing can fetch
        self._attempted_at = now
        self._remember_wanted(want)
        self._inflight = loop.create_task(self._run_fetch())
        return self._inflight

    def _remember_wanted(self, kid: str | None) -> None:
        if kid is not None and len(self._wanted) < MAX_REMEMBERED_KIDS:
            self._wanted.add(kid)

    async def _run_fetch(self) -> None:
        self.fetches += 1
        try:
            async with asyncio.timeout(self.fetch_timeout):
                body = await self._fetch()
            keys = parse_key_set(body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — any failure: keep the old keys, back off
            self._failed_until = self._clock() + self.negative_ttl
            self._wanted.clear()
            log.warning("jwks: fetching %s failed (%s: %s); keeping %d known keys, next try in %.0f s",
                        self.url, type(exc).__name__, str(exc)[:200], len(self._keys),
                        self.negative_ttl)
            return
        now = self._clock()
        dropped = bool(self._keys.keys() - keys.keys())
        self._keys = keys
        if dropped and self.on_keys_dropped is not None:
            self.on_keys_dropped()
        self._fetched_at = now
        for kid in self._wanted - keys.keys():
            self._missing[kid] = now + self.negative_ttl
            self._missing.move_to_end(kid)
        self._wanted.clear()
        for kid in [k for k, until in self._missing.items() if until <= now or k in keys]:
            del self._missing[kid]
        while len(self._missing) > MAX_REMEMBERED_KIDS:
            self._missing.popitem(last=False)

    async def _http_get(self) -> bytes:
        async with (
            httpx.AsyncClient(timeout=self.fetch_timeout, follow_redirects=False) as client,
            client.stream("GET", self.url, headers={"accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise ValueError(f"key set larger than {self.max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
