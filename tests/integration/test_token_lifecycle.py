"""Property 3: token lifecycle management, as a Hypothesis state machine on SQLite and PostgreSQL.

Hypothesis' stateful testing has no async support, so the machine runs in a worker thread with
an event loop and an app context of its own (same database as the test's backend); each example
uses a fresh stream, so examples do not see each other.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from onair.app import build_context, start_context, stop_context
from onair.context import AppContext
from onair.domain import accesstoken2 as at2
from onair.domain.clock import FakeClock
from onair.domain.identity import Principal, Role
from onair.domain.streams import Action
from onair.domain.token_policy import AGORA_MAX_TTL, TokenRole
from onair.errors import Problem
from onair.services.tokens import TokenService
from onair.settings import Settings
from onair.store.tokens import tokens_of
from tests.integration.test_tokens_api import APP_ID, CERT, settings  # noqa: F401

T = TypeVar("T")
BUYERS = 3


@dataclass
class Expected:
    user: str
    role: TokenRole
    revoked: bool = False
    seen_revoked_at: datetime | None = None


def lifecycle_machine(loop: asyncio.AbstractEventLoop, ctx: AppContext,
                      clock: FakeClock) -> type[RuleBasedStateMachine]:
    def run(coro: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(coro)

    class TokenLifecycle(RuleBasedStateMachine):
        """Model: who is a co-host, whether the stream ended, and every token we were given."""

        @initialize(token_ttl=st.integers(60, AGORA_MAX_TTL),
                    privilege_ttl=st.integers(60, AGORA_MAX_TTL))
        def open_stream(self, token_ttl: int, privilege_ttl: int) -> None:
            self.settings = ctx.settings.model_copy(update={
                "agora_token_ttl": token_ttl, "agora_privilege_ttl": privilege_ttl})
            self.tokens_service = TokenService(ctx.db, ctx.events, clock, self.settings)
            tag = secrets.token_hex(4)
            self.seller = Principal(f"seller-{tag}", Role.SELLER)
            self.buyers = [Principal(f"buyer-{i}-{tag}", Role.BUYER) for i in range(BUYERS)]
            stream = run(ctx.streams.create(self.seller, "lifecycle"))
            run(ctx.streams.act(self.seller, stream.id, Action.START))
            self.stream_id = stream.id
            self.cohosts: set[str] = set()
            self.ended = False
            self.expected: dict[str, Expected] = {}
            self.uids: dict[str, int] = {}

        def user(self, index: int) -> Principal:
            return self.seller if index == 0 else self.buyers[index - 1]

        @rule(who=st.integers(0, BUYERS), kind=st.sampled_from(["rtc", "rtm"]),
              refresh=st.booleans())
        def issue(self, who: int, kind: str, refresh: bool) -> None:
            principal = self.user(who)
            assert principal.user_id is not None
            try:
                issued = run(self.tokens_service.issue(principal, self.stream_id, kind,  # type: ignore[arg-type]
                                                       refresh=refresh))
            except Problem as problem:
                assert self.ended and problem.type == "stream-ended", problem
                return
            assert not self.ended, "issued a token for an ended stream"
            if kind == "rtm":
                expected = TokenRole.RTM
            elif principal is self.seller or principal.user_id in self.cohosts:
                expected = TokenRole.PUBLISHER
            else:
                expected = TokenRole.SUBSCRIBER
            # Privileges always equal the user's role at issue time.
            assert issued.role is expected
            parsed = at2.parse(issued.token).token
            now = int(clock.now().timestamp())
            assert parsed.issue_ts == now == int(issued.issued_at.timestamp())
            assert parsed.expire <= AGORA_MAX_TTL
            if kind == "rtc":
                service = parsed.service(at2.ServiceType.RTC)
                assert service is not None
                assert at2.granted_role(service) is expected.rtc
                assert service.fields == (f"onair-{self.stream_id}", str(issued.uid))
            lifetime = min(self.settings.agora_token_ttl, self.settings.agora_privilege_ttl)
            assert int(issued.expires_at.timestamp()) - now == lifetime <= AGORA_MAX_TTL
            refresh_in = int(issued.refresh_after.timestamp()) - now
            assert 0 <= refresh_in <= max(0, lifetime - 30) and refresh_in <= 0.8 * lifetime
            # The uid never changes for a (stream, user).
            assert self.uids.setdefault(principal.user_id, issued.uid) == issued.uid
            sha = hashlib.sha256(issued.token.encode()).hexdigest()
            self.expected[sha] = Expected(principal.user_id, expected)

        @rule(who=st.integers(1, BUYERS))
        def promote(self, who: int) -> None:
            user_id = self.user(who).user_id
            assert user_id is not None
            try:
                run(self.tokens_service.invite(self.seller, self.stream_id, user_id))
            except Problem as problem:
                assert self.ended and problem.type == "stream-ended", problem
                return
            assert not self.ended
            self.cohosts.add(user_id)

        @rule(who=st.integers(1, BUYERS))
        def demote(self, who: int) -> None:
            user_id = self.user(who).user_id
            assert user_id is not None
            try:
                revoked = run(self.tokens_service.demote(self.seller, self.stream_id, user_id))
            except Problem as problem:
                assert user_id not in self.cohosts and problem.type == "cohost-not-found"
                return
            assert user_id in self.cohosts
            self.cohosts.discard(user_id)
            live_publisher = [e for e in self.expected.values() if e.user == user_id
                              and e.role is TokenRole.PUBLISHER and not e.revoked]
            assert revoked == len(live_publisher)
            for entry in live_publisher:
                entry.revoked = True

        @precondition(lambda self: not self.ended)
        @rule()
        def end(self) -> None:
            run(ctx.streams.act(self.seller, self.stream_id, Action.END))
            self.ended = True
            for entry in self.expected.values():
                entry.revoked = True

        @rule(seconds=st.integers(0, 2 * AGORA_MAX_TTL))
        def advance_clock(self, seconds: int) -> None:
            clock.advance(seconds)

        @invariant()
        def ledger_agrees(self) -> None:
            async def rows() -> list[Any]:
                async with ctx.db.read() as conn:
                    return await tokens_of(conn, self.stream_id)

            ledger = run(rows())
            assert {r.token_sha256 for r in ledger} == set(self.expected)
            for row in ledger:
                entry = self.expected[row.token_sha256]
                assert row.role == entry.role.value and row.user_id == entry.user
                assert (row.revoked_at is not None) == entry.revoked
                # Revoked stays revoked, with the same time and reason.
                if entry.seen_revoked_at is not None:
                    assert row.revoked_at == entry.seen_revoked_at
                entry.seen_revoked_at = row.revoked_at
                assert (row.expires_at - row.issued_at).total_seconds() <= AGORA_MAX_TTL

    return TokenLifecycle


def run_machine(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    clock = FakeClock()
    ctx = build_context(settings, clock=clock)
    loop.run_until_complete(start_context(ctx, reaper=False))
    try:
        machine = lifecycle_machine(loop, ctx, clock)
        run_state_machine_as_test(
            machine, settings=hsettings(max_examples=15, stateful_step_count=15, deadline=None)
        )
    finally:
        loop.run_until_complete(stop_context(ctx))
        loop.close()


async def test_property_3_token_lifecycle_management(settings: Settings) -> None:  # noqa: F811
    """Property 3: token lifecycle management.

    Over any sequence of issue / refresh / promote / demote / end / clock advance: the privileges
    of every token equal the user's role at issue time, revoked tokens stay revoked, nothing is
    issued after the end, uids are stable and no expiry exceeds Agora's 24 h cap.
    """
    await asyncio.to_thread(run_machine, settings)
