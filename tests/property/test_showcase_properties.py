"""The showcase state machine under Hypothesis (issue 14).

Several editors issue any commands in any interleaving against domain/showcase.py; clients join,
leave, reconnect and miss events on any schedule. A client here is the contract the browser
reducer implements (client/showcase_state.js, fast-check in tests/web/showcase_state.test.mjs):
apply the change payload whose version is one past its own, re-read the snapshot on a gap or a
(re)join. The machine checks that the payloads the server publishes are enough for that contract.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from onair.domain import showcase as sc

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
LIMITS = sc.Limits(max_products=6)
EDITORS = ("seller", "cohost", "moderator")


def client_apply(view: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """One change payload on a snapshot-shaped view (the reducer's rule, in Python)."""
    products = {p["id"]: p for p in view["products"]}
    if payload["removed"]:
        products.pop(payload["removed"], None)
    if payload["product"]:
        products[payload["product"]["id"]] = payload["product"]
    return {**view, "version": payload["version"], "server_time": payload["server_time"],
            "products": [products[i] for i in payload["order"]],
            "pinned_product_id": payload["pinned_product_id"],
            "pinned_message": payload["pinned_message"]}


def comparable(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != "server_time"}


fields = st.fixed_dictionaries({
    "title": st.sampled_from(["Mug", "  Lamp ", "Chair", "x" * 250, "\u200b"]),
    "price_minor": st.one_of(st.integers(-5, 5000), st.just(10**13)),
    "currency": st.sampled_from(["EUR", "usd", "JPY", "XAU", "ABC"]),
    "product_url": st.sampled_from(["https://shop.example/a", "http://s.example/b?x=1",
                                    "javascript:alert(1)", "https://u:p@evil.example/"]),
}, optional={"stock": st.integers(-1, 20), "image_url": st.none()})


class ShowcaseMachine(RuleBasedStateMachine):
    """Property (issue 14): for any interleaving of showcase changes by several editors and any
    client join/leave/reconnect/missed-event schedule, every client's view equals the server's
    showcase once the events settle; refused changes change nothing; one pinned at most."""

    @initialize()
    def start(self) -> None:
        self.now = T0
        self.server = sc.Showcase("s1")
        self.published: list[dict[str, Any]] = [{}]  # index = version
        self.clients: dict[int, dict[str, Any] | None] = {}  # None: left
        self.n = 0

    def _do(self, editor: str, command: sc.Command) -> None:
        before = self.server
        try:
            change = sc.apply(before, command, self.now, LIMITS)
        except sc.ShowcaseError as err:
            assert err.status in (404, 409, 422)
            assert self.server == before
            return
        assert change.after.version == before.version + 1
        self.server = change.after
        self.published.append(sc.change_payload(change, self.now))
        assert editor in EDITORS

    def _pick(self, data: st.DataObject) -> str:
        ids = [p.id for p in self.server.products] + ["missing"]
        return data.draw(st.sampled_from(ids))

    @rule(editor=st.sampled_from(EDITORS), f=fields)
    def attach(self, editor: str, f: dict[str, Any]) -> None:
        self.n += 1
        self._do(editor, sc.Attach(f"p{self.n}", f))

    @rule(editor=st.sampled_from(EDITORS), data=st.data(),
          kind=st.sampled_from(["edit", "remove", "pin", "unpin", "move", "sold", "deal", "end"]))
    def change(self, editor: str, data: st.DataObject, kind: str) -> None:
        pid = self._pick(data)
        command: sc.Command = {
            "edit": lambda: sc.Edit(pid, data.draw(st.dictionaries(
                st.sampled_from(["title", "price_minor", "stock", "image_url"]),
                st.one_of(st.none(), st.integers(-1, 3000), st.just("Renamed")), max_size=2))),
            "remove": lambda: sc.Remove(pid),
            "pin": lambda: sc.Pin(pid),
            "unpin": lambda: sc.Unpin(),
            "move": lambda: sc.Move(pid, data.draw(st.integers(-1, 8))),
            "sold": lambda: sc.SetSoldOut(pid, data.draw(st.booleans())),
            "deal": lambda: sc.StartDeal(pid, data.draw(st.integers(-1, 3000)),
                                         data.draw(st.integers(0, 3600))),
            "end": lambda: sc.EndDeal(pid),
        }[kind]()
        self._do(editor, command)

    @rule(editor=st.sampled_from(EDITORS), pin=st.booleans(), n=st.integers(1, 3))
    def pinned_message(self, editor: str, pin: bool, n: int) -> None:
        if pin:
            message = sc.PinnedMessage(f"m{n}", n, "buyer", f"question {n}", editor, self.now)
            self._do(editor, sc.PinMessage(message))
        else:
            self._do(editor, sc.UnpinMessage(f"m{n}"))

    @rule(seconds=st.integers(0, 120))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(client=st.integers(0, 3))
    def join_or_reconnect(self, client: int) -> None:
        self.clients[client] = sc.snapshot(self.server, self.now)  # (re)join → re-read

    @rule(client=st.integers(0, 3))
    def leave(self, client: int) -> None:
        self.clients[client] = None

    @precondition(lambda self: any(self.clients.values()))
    @rule(data=st.data())
    def deliver_or_miss(self, data: st.DataObject) -> None:
        """Each connected client gets the next event, misses it, or gets a later one first."""
        for client, view in self.clients.items():
            if view is None or view["version"] == self.server.version:
                continue
            fate = data.draw(st.sampled_from(["next", "miss", "later"]), label=f"c{client}")
            if fate == "miss":
                continue
            version = view["version"] + 1
            if fate == "later":
                version = data.draw(st.integers(version, self.server.version))
            if version == view["version"] + 1:
                self.clients[client] = client_apply(view, self.published[version])
            else:  # a gap: the client re-reads
                self.clients[client] = sc.snapshot(self.server, self.now)

    @invariant()
    def one_pin_at_most_and_it_is_in_the_tray(self) -> None:
        s = self.server
        ids = [p.id for p in s.products]
        assert len(ids) == len(set(ids)) <= LIMITS.max_products
        assert s.pinned_product_id is None or s.pinned_product_id in ids
        for p in s.products:
            assert p.price_minor >= 0 and p.currency.isupper()
            assert p.deal_price_minor is None or 0 <= p.deal_price_minor < p.price_minor

    @invariant()
    def settled_clients_equal_the_server(self) -> None:
        """Deliver every remaining event in order to every connected client (the events settle):
        each then shows exactly the server's showcase."""
        truth = comparable(sc.snapshot(self.server, self.now))
        for view in self.clients.values():
            if view is None:
                continue
            settled = view
            for version in range(view["version"] + 1, self.server.version + 1):
                settled = client_apply(settled, self.published[version])
            assert comparable(settled) == truth


TestShowcaseMachine = ShowcaseMachine.TestCase
TestShowcaseMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
