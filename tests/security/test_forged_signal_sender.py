"""A buyer cannot pose as another peer in WebRTC signalling (realtime/signals.py).

Peers route signals by their ``from`` field, so before this check a buyer could send ``bye`` or
``layer`` as another viewer's peer id and cut that viewer's video off, or answer in its place.
Through a real ``onair serve``: over the socket (acked, in several spellings of the event names)
and the REST broadcast (single event and batch), a signal whose ``from`` is not the sender's own
peer id is refused with a clear reason and reaches nobody; the sender's own peer id still works;
the service role is not checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onair.auth.jwt import mint_key
from onair.auth.keys import load_or_create_secret
from onair.domain.identity import Principal, Role
from onair.realtime.signals import FORGED_SIGNAL, forged_signal
from tests.compat.onair_server import OnairServer, run_server
from tests.security.test_forged_event_names import Socket

ids = st.text(min_size=1, max_size=12)
tabs = st.text(max_size=8).filter(lambda t: ":" not in t)


@given(user=ids, other=ids, tab=tabs, event=st.sampled_from(["signal", "SIGNAL", "Signal", "ſignal"]))
def test_a_viewer_signal_is_accepted_only_from_the_senders_own_viewer_peer(user: str, other: str, tab: str,
                                                                            event: str) -> None:
    buyer = Principal(user, Role.BUYER)
    assert not forged_signal(buyer, event, {"from": f"viewer:{user}:{tab}"})
    assert forged_signal(buyer, event, {"from": f"host:{user}:{tab}"})  # a viewer event is no host's
    assert forged_signal(buyer, event, {"from": f"viewer:{user}:{tab}:x"})  # "a" posing as "a:…"
    if other != user:
        assert forged_signal(buyer, event, {"from": f"viewer:{other}:{tab}"})


@given(user=ids, tab=tabs, payload=st.one_of(st.none(), st.integers(), st.text(),
                                             st.fixed_dictionaries({}, optional={"from": st.integers()})))
def test_a_signal_without_a_string_sender_is_refused(user: str, tab: str, payload: object) -> None:
    seller = Principal(user, Role.SELLER)
    assert forged_signal(seller, "webrtc:signal", payload)
    assert not forged_signal(seller, "webrtc:signal", {"from": f"host:{user}:{tab}"})
    assert not forged_signal(seller, "webrtc:offer", payload)  # only the two signalling events
    assert not forged_signal(Principal("service", Role.SERVICE), "webrtc:signal", payload)
    assert forged_signal(None, "signal", {"from": f"viewer:{user}:{tab}"})  # anonymous: no peer of its own


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnairServer]:
    with run_server(tmp_path_factory.mktemp("forged-signal")) as srv:
        yield srv


def signal(sender: str, to: str, kind: str, marker: str, stream_id: str) -> dict[str, object]:
    return {"stream_id": stream_id, "from": sender, "to": to, "kind": kind, "data": {}, "marker": marker}


async def test_a_buyer_cannot_hang_up_another_viewers_video(server: OnairServer) -> None:
    seller = server.token("fs-seller", "seller")
    sid = server.create_live_stream(seller)
    topic = f"realtime:stream:{sid}"
    host = await Socket.open(server, "2.0.0", topic, seller, private=True)
    victim = await Socket.open(server, "2.0.0", topic, server.token("fs-victim"), private=True)
    attacker = await Socket.open(server, "2.0.0", topic, server.token("fs-attacker"), private=True)
    try:
        for event, sender, kind in [("signal", "viewer:fs-victim:tab1", "bye"),
                                    ("SIGNAL", "viewer:fs-victim:tab1", "layer"),
                                    ("Signal", "viewer:fs-attacker:tab1:x", "answer"),
                                    ("signal", "host:fs-attacker:tab1", "answer"),
                                    ("signal", None, "bye")]:
            reply = await attacker.request("broadcast", {"type": "broadcast", "event": event, "payload": {
                **signal(sender, "host", kind, "forged", sid)}})  # type: ignore[arg-type]
            assert reply == {"status": "error", "response": {"reason": FORGED_SIGNAL}}, (event, sender, reply)
        # the seller's own signals are checked the same way: only its own host peer
        reply = await host.request("broadcast", {"type": "broadcast", "event": "webrtc:signal",
                                                 "payload": signal("host:fs-victim:t", "*", "offer", "forged", sid)})
        assert reply["status"] == "error"

        mine = signal("viewer:fs-attacker:tab1", "host", "answer", "own", sid)
        reply = await attacker.request("broadcast", {"type": "broadcast", "event": "signal", "payload": mine})
        assert reply["status"] == "ok"
        offer = signal("host:fs-seller:tab9", "viewer:fs-victim:tab1", "offer", "host-own", sid)
        reply = await host.request("broadcast", {"type": "broadcast", "event": "webrtc:signal", "payload": offer})
        assert reply["status"] == "ok"
        await host.wait_for("signal", "own")
        await victim.wait_for("webrtc:signal", "host-own")

        rest = f"{server.url}/realtime/v1/api/broadcast"
        buyer_headers = {"Authorization": f"Bearer {server.token('fs-attacker')}", "apikey": server.anon_key}
        async with httpx.AsyncClient(timeout=10) as http:
            forged = signal("viewer:fs-victim:tab1", "host", "bye", "forged", sid)
            got = await http.post(f"{rest}/stream:{sid}/events/signal", headers=buyer_headers, json=forged)
            assert (got.status_code, got.json()) == (403, {"message": FORGED_SIGNAL})
            # a batch with one forged signal sends none of it, not even its valid messages
            batch = {"messages": [
                {"topic": f"stream:{sid}", "event": "signal", "private": True,
                 "payload": signal("viewer:fs-attacker:tab1", "host", "answer", "forged", sid)},
                {"topic": f"stream:{sid}", "event": "Signal", "private": True, "payload": forged}]}
            got = await http.post(rest, headers=buyer_headers, json=batch)
            assert (got.status_code, got.json()) == (403, {"message": FORGED_SIGNAL})
            service_key = mint_key(load_or_create_secret(server.data_dir), "service_role", 10 * 365 * 86400)
            service = {"Authorization": f"Bearer {service_key}", "apikey": server.anon_key}
            relayed = signal("viewer:fs-victim:tab1", "host", "answer", "service", sid)
            got = await http.post(f"{rest}/stream:{sid}/events/signal", headers=service, json=relayed)
            assert got.status_code == 202, got.text
        await host.wait_for("signal", "service")
        await asyncio.sleep(0.3)  # anything forged was sent long before the markers
        for sock in (host, victim):
            leaked = [p for _, p in sock.broadcasts() if isinstance(p, dict) and p.get("marker") == "forged"]
            assert leaked == []
    finally:
        for sock in (host, victim, attacker):
            await sock.close()
