"""Server events (``stream_state``, ``viewer_count``, ``token_renew``) are the server's word to
viewers: only the service role sends them, not even moderators or admins, whose tokens live in
browsers (found by the authorization matrix; before, "staff may do everything" let them forge
a stream's end or a token renewal)."""

from __future__ import annotations

import asyncio

import pytest

from onair.domain.identity import Principal, Role
from onair.realtime.policies import SERVER_EVENTS, StreamFacts, StreamPolicy


def policy() -> StreamPolicy:
    async def load(stream_id: str) -> StreamFacts | None:
        return StreamFacts("seller", {"cohost"}, set())

    p = StreamPolicy(load)
    asyncio.run(p.prepare(None, "stream:s1"))
    return p


@pytest.mark.parametrize("event", sorted(SERVER_EVENTS))
@pytest.mark.parametrize("role", [Role.MODERATOR, Role.ADMIN, Role.SELLER, Role.BUYER])
def test_only_the_service_role_sends_server_events(role: Role, event: str) -> None:
    p = policy()
    user = Principal("seller" if role is Role.SELLER else "someone", role)
    assert not p.allowed(user, "stream:s1", "broadcast", "write", event=event)
    assert p.allowed(Principal("service", Role.SERVICE), "stream:s1", "broadcast", "write",
                     event=event)
    # staff still do everything else
    if role in (Role.MODERATOR, Role.ADMIN):
        assert p.allowed(user, "stream:s1", "broadcast", "write", event="seller:pin")
        assert p.allowed(user, "stream:s1", "postgres_changes:stream_viewers", "read")
