"""Token roles, lifetimes, refresh schedule and salts (pure rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onair.domain.accesstoken2 import MAX_SALT
from onair.domain.token_policy import (
    AGORA_MAX_TTL,
    Lifetimes,
    SaltSequence,
    TokenRole,
    channel_name,
    entitled_role,
    granted_role,
    schedule,
)


def test_entitlement_comes_from_stream_facts_only() -> None:
    assert entitled_role("s", "s", False) is TokenRole.PUBLISHER
    assert entitled_role("c", "s", True) is TokenRole.PUBLISHER
    assert entitled_role("b", "s", False) is TokenRole.SUBSCRIBER


@pytest.mark.parametrize(
    ("entitled", "requested", "granted"),
    [
        (TokenRole.PUBLISHER, None, TokenRole.PUBLISHER),
        (TokenRole.PUBLISHER, TokenRole.SUBSCRIBER, TokenRole.SUBSCRIBER),
        (TokenRole.SUBSCRIBER, None, TokenRole.SUBSCRIBER),
        (TokenRole.SUBSCRIBER, TokenRole.SUBSCRIBER, TokenRole.SUBSCRIBER),
        (TokenRole.SUBSCRIBER, TokenRole.PUBLISHER, None),
        (TokenRole.SUBSCRIBER, TokenRole.RTM, None),
    ],
)
def test_anyone_may_ask_for_less_nobody_gets_more(
    entitled: TokenRole, requested: TokenRole | None, granted: TokenRole | None
) -> None:
    assert granted_role(entitled, requested) is granted


def test_channel_is_prefix_and_stream() -> None:
    assert channel_name("onair-", "abc") == "onair-abc"


@pytest.mark.parametrize(
    ("token", "privilege", "refresh_in"),
    [
        (3600, 3600, 2880),  # 80 % comes first
        (100, 100, 70),  # 30 s before expiry comes first
        (3600, 600, 480),  # the privilege ends before the token
        (600, 3600, 480),  # privileges are capped at the token lifetime
        (20, 20, 0),  # shorter than the margin: refresh at once
    ],
)
def test_schedule(token: int, privilege: int, refresh_in: int) -> None:
    plan = schedule(1_000, Lifetimes(token, privilege, 0.8, 30))
    assert plan.refresh_after - 1_000 == refresh_in
    assert plan.privilege_expire == min(token, privilege)
    assert plan.expires_at == 1_000 + min(token, privilege)


@given(
    token=st.integers(1, AGORA_MAX_TTL), privilege=st.integers(1, 10 * AGORA_MAX_TTL),
    fraction=st.floats(0.01, 1.0), margin=st.integers(0, 600), issued=st.integers(0, 2**31),
)
def test_schedule_bounds(token: int, privilege: int, fraction: float, margin: int,
                         issued: int) -> None:
    plan = schedule(issued, Lifetimes(token, privilege, fraction, margin))
    assert plan.issued_at == issued
    assert plan.privilege_expire <= plan.token_expire <= AGORA_MAX_TTL
    assert issued <= plan.refresh_after <= plan.expires_at
    assert plan.refresh_after <= max(issued, plan.expires_at - margin)


@pytest.mark.parametrize("bad", [
    dict(token_ttl=0), dict(token_ttl=AGORA_MAX_TTL + 1), dict(privilege_ttl=0),
    dict(refresh_fraction=0), dict(refresh_fraction=1.5), dict(refresh_margin=-1),
])
def test_lifetimes_refuse_nonsense(bad: dict[str, float]) -> None:
    fields = dict(token_ttl=3600, privilege_ttl=3600, refresh_fraction=0.8, refresh_margin=30)
    with pytest.raises(ValueError):
        Lifetimes(**{**fields, **bad})  # type: ignore[arg-type]


def test_salts_do_not_repeat_and_wrap_within_range() -> None:
    salts = SaltSequence(MAX_SALT - 2)
    drawn = [salts() for _ in range(5)]
    assert drawn == [MAX_SALT - 2, MAX_SALT - 1, MAX_SALT, 1, 2]
    with pytest.raises(ValueError):
        SaltSequence(0)
