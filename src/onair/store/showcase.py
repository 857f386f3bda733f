"""Queries on a stream's showcase: load it whole, write one accepted change as a diff."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from onair.domain.showcase import PinnedMessage, Product, Showcase
from onair.store.tables import showcase_products, showcase_state

_PRODUCT_COLUMNS = ("id", "title", "price_minor", "currency", "product_url", "image_url", "stock",
                    "external_id", "sold_out", "deal_price_minor", "deal_ends_at")


def _product(row: Any) -> Product:
    values = {name: getattr(row, name) for name in _PRODUCT_COLUMNS}
    values["sold_out"] = bool(values["sold_out"])
    return Product(**values)


async def load(conn: AsyncConnection, stream_id: str) -> Showcase:
    """The stream's showcase (version 0 and empty when nothing was ever changed)."""
    state = (await conn.execute(
        select(showcase_state).where(showcase_state.c.stream_id == stream_id))).first()
    if state is None:
        return Showcase(stream_id)
    rows = await conn.execute(
        select(showcase_products).where(showcase_products.c.stream_id == stream_id)
        .order_by(showcase_products.c.position))
    message = None
    if state.pinned_message_id is not None:
        message = PinnedMessage(state.pinned_message_id, state.pinned_message_seq,
                                state.pinned_message_sender, state.pinned_message_body,
                                state.pinned_by, state.pinned_at)
    return Showcase(stream_id, state.version, tuple(_product(r) for r in rows),
                    state.pinned_product_id, message)


def _state_values(s: Showcase, now: datetime) -> dict[str, Any]:
    m = s.pinned_message
    return {"version": s.version, "pinned_product_id": s.pinned_product_id,
            "pinned_message_id": m.message_id if m else None,
            "pinned_message_seq": m.seq if m else None,
            "pinned_message_sender": m.sender_id if m else None,
            "pinned_message_body": m.body if m else None,
            "pinned_by": m.pinned_by if m else None, "pinned_at": m.pinned_at if m else None,
            "updated_at": now}


async def save(conn: AsyncConnection, before: Showcase, after: Showcase, now: datetime) -> bool:
    """Write ``after`` over ``before``; False (nothing written) when the stored version moved on.
    Callers hold the stream's row lock, so the version check is a second line of defence."""
    values = _state_values(after, now)
    if before.version == 0:
        await conn.execute(insert(showcase_state).values(stream_id=after.stream_id, **values))
    else:
        result = await conn.execute(update(showcase_state).where(
            showcase_state.c.stream_id == after.stream_id,
            showcase_state.c.version == before.version).values(**values))
        if result.rowcount != 1:
            return False
    old = {p.id: (i, p) for i, p in enumerate(before.products)}
    kept = {p.id for p in after.products}
    gone = [pid for pid in old if pid not in kept]
    if gone:
        await conn.execute(delete(showcase_products).where(
            showcase_products.c.stream_id == after.stream_id, showcase_products.c.id.in_(gone)))
    for position, product in enumerate(after.products):
        row = {name: getattr(product, name) for name in _PRODUCT_COLUMNS}
        if product.id not in old:
            await conn.execute(insert(showcase_products).values(
                stream_id=after.stream_id, position=position, updated_at=now, **row))
        elif old[product.id] != (position, product):
            await conn.execute(update(showcase_products).where(
                showcase_products.c.id == product.id).values(position=position, updated_at=now, **row))
    return True
