"""A stream's product showcase and pinned chat message: validation and the state machine. Pure.

The showcase is an ordered tray of products, at most one of them pinned (shown over the video),
plus at most one pinned chat message. Every accepted change yields a new ``Showcase`` whose
``version`` is one more than before; a refused change raises ``ShowcaseError`` and changes nothing.
Clients apply changes in version order and re-read the whole showcase when they see a gap, so a
change event (``change_payload``) carries the changed product (or the removed id) plus the small
layout (tray order, pinned ids) — never the whole tray.

Prices are integer minor units (cents; yen have none) with an ISO 4217 currency that has minor
units defined (``iso4217``: XAU, XXX and friends are not prices). A flash deal is a lower price
until ``deal_ends_at``, an absolute time set here from the server's clock: clients count down
against the server time the events carry, never their own clock alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from iso4217 import Currency

from onair.domain.text import TextKind, TextRejected, clean_text


class ShowcaseError(ValueError):
    """A refused change: HTTP-ish ``status`` (404, 409, 422), stable ``slug``, human ``detail``."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail


def invalid(detail: str) -> ShowcaseError:
    return ShowcaseError(422, "invalid-product", detail)


@dataclass(frozen=True)
class Limits:
    max_products: int = 50
    title_max_chars: int = 200
    url_max_chars: int = 2048
    external_id_max_chars: int = 128
    max_price_minor: int = 10**12
    max_stock: int = 10**9
    deal_max_seconds: int = 24 * 3600


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    price_minor: int
    currency: str
    product_url: str
    image_url: str | None = None
    stock: int | None = None
    external_id: str | None = None
    sold_out: bool = False
    deal_price_minor: int | None = None
    deal_ends_at: datetime | None = None

    def deal_active(self, now: datetime) -> bool:
        return self.deal_ends_at is not None and now < self.deal_ends_at


@dataclass(frozen=True)
class PinnedMessage:
    message_id: str
    seq: int
    sender_id: str
    body: str
    pinned_by: str
    pinned_at: datetime


@dataclass(frozen=True)
class Showcase:
    stream_id: str
    version: int = 0
    products: tuple[Product, ...] = ()  # the tray, in display order
    pinned_product_id: str | None = None
    pinned_message: PinnedMessage | None = None

    def product(self, product_id: str) -> Product:
        for product in self.products:
            if product.id == product_id:
                return product
        raise ShowcaseError(404, "product-not-found", f"no product {product_id!r} in this showcase")


# --- validation of client-supplied fields -------------------------------------------------------

PRODUCT_FIELDS = ("title", "price_minor", "currency", "product_url", "image_url", "stock",
                  "external_id")


def currency_exponent(code: str) -> int:
    """Minor-unit digits of an ISO 4217 code (upper case); refuses unknown and unit-less codes."""
    try:
        exponent = Currency(code).exponent if code.isascii() and code.isupper() else None
    except ValueError:
        exponent = None
    if exponent is None:
        raise invalid(f"currency: {code[:8]!r} is not an ISO 4217 currency with minor units")
    return int(exponent)


def check_url(value: str, name: str, limits: Limits) -> str:
    if len(value) > limits.url_max_chars:
        raise invalid(f"{name}: at most {limits.url_max_chars} characters")
    if not value.isascii() or any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise invalid(f"{name}: must be an ASCII URL without spaces (percent-encode the rest)")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a bad port
    except ValueError:
        raise invalid(f"{name}: not a URL") from None
    del port
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise invalid(f"{name}: only http(s) URLs with a host are allowed")
    if parts.username is not None or parts.password is not None:
        raise invalid(f"{name}: credentials in URLs are not allowed")
    return value


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name}: must be an integer")
    if not low <= value <= high:
        raise invalid(f"{name}: must be between {low} and {high}")
    return value


def _text(value: Any, name: str, kind: TextKind, max_chars: int) -> str:
    if not isinstance(value, str):
        raise invalid(f"{name}: must be a string")
    try:
        return clean_text(value, kind, max_chars=max_chars)
    except TextRejected as err:
        raise invalid(f"{name}: {err.detail}") from None


def check_fields(fields: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The product fields in ``fields`` (a subset of PRODUCT_FIELDS), validated and normalised."""
    unknown = set(fields) - set(PRODUCT_FIELDS)
    if unknown:
        raise invalid(f"unknown fields: {', '.join(sorted(unknown)[:5])}")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None and name in ("image_url", "stock", "external_id"):
            out[name] = None
        elif name == "title":
            out[name] = _text(value, name, TextKind.LINE, limits.title_max_chars)
        elif name == "price_minor":
            out[name] = _int(value, name, 0, limits.max_price_minor)
        elif name == "currency":
            if not isinstance(value, str):
                raise invalid("currency: must be a string")
            currency_exponent(value.upper())
            out[name] = value.upper()
        elif name in ("product_url", "image_url"):
            if not isinstance(value, str):
                raise invalid(f"{name}: must be a string")
            out[name] = check_url(value, name, limits)
        elif name == "stock":
            out[name] = _int(value, name, 0, limits.max_stock)
        else:  # external_id: an opaque id of the shop's, kept byte for byte
            out[name] = _text(value, name, TextKind.ID, limits.external_id_max_chars)
    return out


# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attach:
    product_id: str  # chosen by the service (uuid7)
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Edit:
    product_id: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Remove:
    product_id: str


@dataclass(frozen=True)
class Pin:
    product_id: str


@dataclass(frozen=True)
class Unpin:
    pass


@dataclass(frozen=True)
class Move:
    product_id: str
    position: int  # 0-based index in the tray after the move (clamped to the end)


@dataclass(frozen=True)
class SetSoldOut:
    product_id: str
    sold_out: bool


@dataclass(frozen=True)
class StartDeal:
    product_id: str
    deal_price_minor: int
    duration_seconds: int


@dataclass(frozen=True)
class EndDeal:
    product_id: str


@dataclass(frozen=True)
class PinMessage:
    message: PinnedMessage


@dataclass(frozen=True)
class UnpinMessage:
    message_id: str | None = None  # None: whatever is pinned; an id: only if that one is pinned


Command = (Attach | Edit | Remove | Pin | Unpin | Move | SetSoldOut | StartDeal | EndDeal
           | PinMessage | UnpinMessage)


@dataclass(frozen=True)
class Change:
    """An accepted command's outcome: the new showcase and what the change event must carry."""

    after: Showcase
    product: Product | None = None  # added or changed
    removed: str | None = None  # id of a removed product


def apply(showcase: Showcase, command: Command, now: datetime, limits: Limits = Limits()) -> Change:
    """``showcase`` after ``command`` at ``now``; raises ShowcaseError and changes nothing."""
    s = showcase
    products = list(s.products)
    if isinstance(command, Attach):
        if len(products) >= limits.max_products:
            raise ShowcaseError(409, "showcase-full",
                                f"a showcase holds at most {limits.max_products} products")
        fields = check_fields(command.fields, limits)
        missing = [n for n in ("title", "price_minor", "currency", "product_url") if n not in fields]
        if missing:
            raise invalid(f"missing fields: {', '.join(missing)}")
        product = Product(id=command.product_id, **fields)
        return _changed(s, [*products, product], product=product)
    if isinstance(command, UnpinMessage):
        held = s.pinned_message
        if held is None or (command.message_id is not None and held.message_id != command.message_id):
            raise ShowcaseError(409, "nothing-pinned", "that message is not pinned")
        return _changed(s, products, pinned_message=None)
    if isinstance(command, PinMessage):
        return _changed(s, products, pinned_message=command.message)
    if isinstance(command, Unpin):
        if s.pinned_product_id is None:
            raise ShowcaseError(409, "nothing-pinned", "no product is pinned")
        return _changed(s, products, pinned_product_id=None)
    current = s.product(command.product_id)
    index = products.index(current)
    if isinstance(command, Remove):
        del products[index]
        pinned = None if s.pinned_product_id == current.id else s.pinned_product_id
        return _changed(s, products, pinned_product_id=pinned, removed=current.id)
    if isinstance(command, Pin):
        return _changed(s, products, pinned_product_id=current.id, product=current)
    if isinstance(command, Move):
        _int(command.position, "position", 0, limits.max_products)
        del products[index]
        products.insert(min(command.position, len(products)), current)
        return _changed(s, products, product=current)
    if isinstance(command, Edit):
        fields = check_fields(command.fields, limits)
        for name in ("title", "price_minor", "currency", "product_url"):
            if name in command.fields and command.fields[name] is None:
                raise invalid(f"{name}: may not be null")
        updated = replace(current, **fields)
        if updated.deal_price_minor is not None and updated.deal_price_minor >= updated.price_minor:
            updated = replace(updated, deal_price_minor=None, deal_ends_at=None)  # no longer a deal
    elif isinstance(command, SetSoldOut):
        updated = replace(current, sold_out=bool(command.sold_out))
    elif isinstance(command, StartDeal):
        price = _int(command.deal_price_minor, "deal_price_minor", 0, limits.max_price_minor)
        seconds = _int(command.duration_seconds, "duration_seconds", 1, limits.deal_max_seconds)
        if price >= current.price_minor:
            raise invalid("deal_price_minor: must be below the product's price")
        updated = replace(current, deal_price_minor=price,
                          deal_ends_at=now + timedelta(seconds=seconds))
    elif isinstance(command, EndDeal):
        if current.deal_ends_at is None:
            raise ShowcaseError(409, "no-deal", "this product has no deal to end")
        updated = replace(current, deal_price_minor=None, deal_ends_at=None)
    else:  # pragma: no cover - exhaustive over Command
        raise TypeError(command)
    products[index] = updated
    return _changed(s, products, product=updated)


_KEEP: Any = object()


def _changed(s: Showcase, products: list[Product], *, pinned_product_id: Any = _KEEP,
             pinned_message: Any = _KEEP, product: Product | None = None,
             removed: str | None = None) -> Change:
    after = Showcase(
        stream_id=s.stream_id, version=s.version + 1, products=tuple(products),
        pinned_product_id=s.pinned_product_id if pinned_product_id is _KEEP else pinned_product_id,
        pinned_message=s.pinned_message if pinned_message is _KEEP else pinned_message)
    return Change(after, product, removed)


# --- what leaves the server ---------------------------------------------------------------------


def product_dict(p: Product) -> dict[str, Any]:
    return {"id": p.id, "title": p.title, "price_minor": p.price_minor, "currency": p.currency,
            "currency_exponent": currency_exponent(p.currency), "product_url": p.product_url,
            "image_url": p.image_url, "stock": p.stock, "external_id": p.external_id,
            "sold_out": p.sold_out, "deal_price_minor": p.deal_price_minor,
            "deal_ends_at": p.deal_ends_at}


def pinned_message_dict(m: PinnedMessage | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"message_id": m.message_id, "seq": m.seq, "sender_id": m.sender_id, "body": m.body,
            "pinned_by": m.pinned_by, "pinned_at": m.pinned_at}


def snapshot(s: Showcase, now: datetime) -> dict[str, Any]:
    """The whole showcase as REST returns it (``server_time`` lets clients count down)."""
    return {"stream_id": s.stream_id, "version": s.version, "server_time": now,
            "products": [product_dict(p) for p in s.products],
            "pinned_product_id": s.pinned_product_id,
            "pinned_message": pinned_message_dict(s.pinned_message)}


def change_payload(change: Change, now: datetime) -> dict[str, Any]:
    """The ``showcase`` broadcast for one accepted change (see the module docstring)."""
    s = change.after
    return {"stream_id": s.stream_id, "version": s.version, "server_time": now,
            "order": [p.id for p in s.products], "pinned_product_id": s.pinned_product_id,
            "pinned_message": pinned_message_dict(s.pinned_message),
            "product": product_dict(change.product) if change.product is not None else None,
            "removed": change.removed}
