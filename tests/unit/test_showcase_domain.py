"""domain/showcase.py: product validation and the showcase state machine (issue 14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from onair.domain import showcase as sc

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
GOOD = {"title": "Red mug", "price_minor": 1299, "currency": "eur",
        "product_url": "https://shop.example/mug", "image_url": "https://cdn.example/mug.jpg"}


def attached(*ids: str) -> sc.Showcase:
    s = sc.Showcase("s1")
    for pid in ids:
        s = sc.apply(s, sc.Attach(pid, GOOD), NOW).after
    return s


def test_attach_normalises_and_versions() -> None:
    change = sc.apply(sc.Showcase("s1"), sc.Attach("p1", {**GOOD, "title": "  Red \n mug "}), NOW)
    assert change.after.version == 1
    assert change.product == change.after.products[0]
    assert change.product.title == "Red mug" and change.product.currency == "EUR"


@pytest.mark.parametrize(("fields", "needle"), [
    ({"price_minor": -1}, "price_minor"),
    ({"price_minor": 1.5}, "price_minor"),
    ({"price_minor": True}, "price_minor"),
    ({"price_minor": 10**13}, "price_minor"),
    ({"currency": "XYZ"}, "currency"),
    ({"currency": "XAU"}, "currency"),  # gold has no minor units: not a price
    ({"currency": "ＥＵＲ"}, "currency"),
    ({"product_url": "javascript:alert(1)"}, "product_url"),
    ({"product_url": "ftp://shop.example/x"}, "product_url"),
    ({"product_url": "https://user:pw@shop.example/"}, "product_url"),
    ({"product_url": "https:///nohost"}, "product_url"),
    ({"product_url": "https://shop.example/a b"}, "product_url"),
    ({"product_url": "https://shop.example:99999/"}, "product_url"),
    ({"image_url": "data:image/png;base64,AAAA"}, "image_url"),
    ({"product_url": "https://shop.example/" + "a" * 2100}, "product_url"),
    ({"title": "x" * 201}, "title"),
    ({"title": "\u200b"}, "title"),
    ({"title": "a\u202eb"}, "title"),
    ({"stock": -2}, "stock"),
    ({"external_id": "a b"}, "external_id"),
    ({"colour": "red"}, "unknown"),
])
def test_bad_input_is_refused_with_422_and_changes_nothing(fields: dict, needle: str) -> None:
    s = attached("p1")
    with pytest.raises(sc.ShowcaseError) as err:
        sc.apply(s, sc.Attach("p2", {**GOOD, **fields}), NOW)
    assert err.value.status == 422 and needle in err.value.detail
    with pytest.raises(sc.ShowcaseError):
        sc.apply(s, sc.Edit("p1", fields), NOW)


def test_missing_required_fields() -> None:
    with pytest.raises(sc.ShowcaseError, match="missing fields: price_minor"):
        sc.apply(sc.Showcase("s1"), sc.Attach("p", {k: v for k, v in GOOD.items() if k != "price_minor"}), NOW)
    with pytest.raises(sc.ShowcaseError, match="title"):
        sc.apply(attached("p1"), sc.Edit("p1", {"title": None}), NOW)


def test_zero_decimal_currency_and_free_products() -> None:
    s = sc.apply(sc.Showcase("s1"), sc.Attach("p", {**GOOD, "currency": "JPY", "price_minor": 0}), NOW).after
    assert sc.product_dict(s.products[0])["currency_exponent"] == 0


def test_pin_one_at_a_time_and_remove_unpins() -> None:
    s = attached("a", "b")
    s = sc.apply(s, sc.Pin("a"), NOW).after
    s = sc.apply(s, sc.Pin("b"), NOW).after
    assert s.pinned_product_id == "b"
    change = sc.apply(s, sc.Remove("b"), NOW)
    assert change.removed == "b" and change.after.pinned_product_id is None
    with pytest.raises(sc.ShowcaseError) as err:
        sc.apply(change.after, sc.Unpin(), NOW)
    assert err.value.status == 409
    with pytest.raises(sc.ShowcaseError) as err:
        sc.apply(change.after, sc.Pin("b"), NOW)
    assert err.value.status == 404


def test_move_orders_the_tray() -> None:
    s = attached("a", "b", "c")
    assert [p.id for p in sc.apply(s, sc.Move("c", 0), NOW).after.products] == ["c", "a", "b"]
    assert [p.id for p in sc.apply(s, sc.Move("a", 49), NOW).after.products] == ["b", "c", "a"]
    with pytest.raises(sc.ShowcaseError):
        sc.apply(s, sc.Move("a", -1), NOW)


def test_flash_deal_ends_at_server_time() -> None:
    s = attached("a")
    after = sc.apply(s, sc.StartDeal("a", 999, 300), NOW).after
    product = after.products[0]
    assert product.deal_ends_at == NOW + timedelta(seconds=300)
    assert product.deal_active(NOW + timedelta(seconds=299)) and not product.deal_active(product.deal_ends_at)
    for price, seconds in [(1299, 60), (-1, 60), (10, 0), (10, 24 * 3600 + 1)]:
        with pytest.raises(sc.ShowcaseError) as err:
            sc.apply(s, sc.StartDeal("a", price, seconds), NOW)
        assert err.value.status == 422
    ended = sc.apply(after, sc.EndDeal("a"), NOW).after.products[0]
    assert ended.deal_ends_at is None and ended.deal_price_minor is None
    # a price cut below the deal price ends the deal: a "deal" may never cost more
    cut = sc.apply(after, sc.Edit("a", {"price_minor": 500}), NOW).after.products[0]
    assert cut.deal_price_minor is None


def test_sold_out_and_full_showcase() -> None:
    s = sc.apply(attached("a"), sc.SetSoldOut("a", True), NOW).after
    assert s.products[0].sold_out
    small = sc.Limits(max_products=2)
    with pytest.raises(sc.ShowcaseError) as err:
        sc.apply(attached("a", "b"), sc.Attach("c", GOOD), NOW, small)
    assert err.value.status == 409 and err.value.slug == "showcase-full"


def test_pinned_message_unpins_only_the_named_message() -> None:
    msg = sc.PinnedMessage("m1", 3, "u1", "hello", "seller", NOW)
    s = sc.apply(sc.Showcase("s1"), sc.PinMessage(msg), NOW).after
    with pytest.raises(sc.ShowcaseError):
        sc.apply(s, sc.UnpinMessage("other"), NOW)
    assert sc.apply(s, sc.UnpinMessage("m1"), NOW).after.pinned_message is None


def test_change_payload_carries_the_delta_and_layout() -> None:
    s = attached("a", "b")
    change = sc.apply(s, sc.Remove("a"), NOW)
    payload = sc.change_payload(change, NOW)
    assert payload["version"] == 3 and payload["order"] == ["b"] and payload["removed"] == "a"
    assert payload["product"] is None and payload["server_time"] == NOW
