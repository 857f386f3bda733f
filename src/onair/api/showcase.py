"""REST for a stream's product showcase and pinned chat message (issue 14).

Reading is open to whoever may read the stream; every change needs the seller, a co-host or staff
(services/showcase.py). Every change answers with the whole new showcase, so the studio needs no
second request. Field rules (prices, currencies, URLs, sizes) live in domain/showcase.py: a refused
value is a 422 ``invalid-product`` naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from onair.api.deps import Ctx, CurrentPrincipal, RequireUser
from onair.api.fields import Identifier, IdPath, Line
from onair.api.openapi import problems
from onair.domain import showcase as rules
from onair.services.showcase import ShowcaseService, new_product_id

router = APIRouter(prefix="/streams/{stream_id}", tags=["showcase"], responses=problems(401, 404))

CURRENCY = r"^[A-Za-z]{3}$"  # ISO 4217 code, e.g. EUR (domain/showcase.py checks it is one)
Url = Annotated[Identifier, Field(max_length=4096, description="An http(s) URL")]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Line = Field(max_length=1000)
    price_minor: StrictInt = Field(description="Price in minor units (cents), ≥ 0")
    currency: str = Field(pattern=CURRENCY)
    product_url: Url
    image_url: Url | None = None
    stock: StrictInt | None = None
    external_id: Identifier | None = Field(default=None, max_length=1000)


class ProductPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Line | None = Field(default=None, max_length=1000)
    price_minor: StrictInt | None = None
    currency: str | None = Field(default=None, pattern=CURRENCY)
    product_url: Url | None = None
    image_url: Url | None = None
    stock: StrictInt | None = None
    external_id: Identifier | None = Field(default=None, max_length=1000)


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: StrictInt


class SoldOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sold_out: StrictBool = True


class DealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deal_price_minor: StrictInt
    duration_seconds: StrictInt


class PinMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: Identifier = Field(max_length=255)


class ProductOut(BaseModel):
    id: str
    title: str
    price_minor: int
    currency: str
    currency_exponent: int
    product_url: str
    image_url: str | None
    stock: int | None
    external_id: str | None
    sold_out: bool
    deal_price_minor: int | None
    deal_ends_at: datetime | None


class PinnedMessageOut(BaseModel):
    message_id: str
    seq: int
    sender_id: str
    body: str
    pinned_by: str
    pinned_at: datetime


class ShowcaseOut(BaseModel):
    stream_id: str
    version: int
    server_time: datetime = Field(description="The server's clock: count deals down against it")
    products: list[ProductOut]
    pinned_product_id: str | None
    pinned_message: PinnedMessageOut | None


def service(ctx: Any) -> ShowcaseService:
    svc: ShowcaseService = ctx.showcase
    return svc


CHANGES = problems(403, 409, 422)


@router.get("/showcase", response_model=ShowcaseOut)
async def get_showcase(stream_id: IdPath, ctx: Ctx, _principal: CurrentPrincipal) -> Any:
    return await service(ctx).read(stream_id)


@router.post("/showcase/products", status_code=201, response_model=ShowcaseOut, responses=CHANGES)
async def attach_product(stream_id: IdPath, body: ProductIn, principal: RequireUser, ctx: Ctx) -> Any:
    command = rules.Attach(new_product_id(ctx.clock), body.model_dump(exclude_none=True))
    return await service(ctx).change(principal, stream_id, command)


@router.patch("/showcase/products/{product_id}", response_model=ShowcaseOut, responses=CHANGES)
async def edit_product(stream_id: IdPath, product_id: IdPath, body: ProductPatch,
                       principal: RequireUser, ctx: Ctx) -> Any:
    fields = body.model_dump(exclude_unset=True)
    return await service(ctx).change(principal, stream_id, rules.Edit(product_id, fields))


@router.delete("/showcase/products/{product_id}", response_model=ShowcaseOut, responses=CHANGES)
async def remove_product(stream_id: IdPath, product_id: IdPath, principal: RequireUser,
                         ctx: Ctx) -> Any:
    return await service(ctx).change(principal, stream_id, rules.Remove(product_id))


@router.post("/showcase/products/{product_id}/pin", response_model=ShowcaseOut, responses=CHANGES)
async def pin_product(stream_id: IdPath, product_id: IdPath, principal: RequireUser,
                      ctx: Ctx) -> Any:
    return await service(ctx).change(principal, stream_id, rules.Pin(product_id))


@router.delete("/showcase/pin", response_model=ShowcaseOut, responses=CHANGES)
async def unpin_product(stream_id: IdPath, principal: RequireUser, ctx: Ctx) -> Any:
    return await service(ctx).change(principal, stream_id, rules.Unpin())


@router.post("/showcase/products/{product_id}/move", response_model=ShowcaseOut, responses=CHANGES)
async def move_product(stream_id: IdPath, product_id: IdPath, body: MoveIn,
                       principal: RequireUser, ctx: Ctx) -> Any:
    return await service(ctx).change(principal, stream_id, rules.Move(product_id, body.position))


@router.post("/showcase/products/{product_id}/sold-out", response_model=ShowcaseOut,
             responses=CHANGES)
async def mark_sold_out(stream_id: IdPath, product_id: IdPath, body: SoldOutIn,
                        principal: RequireUser, ctx: Ctx) -> Any:
    return await service(ctx).change(principal, stream_id, rules.SetSoldOut(product_id, body.sold_out))


@router.post("/showcase/products/{product_id}/deal", response_model=ShowcaseOut, responses=CHANGES)
async def start_deal(stream_id: IdPath, product_id: IdPath, body: DealIn,
                     principal: RequireUser, ctx: Ctx) -> Any:
    command = rules.StartDeal(product_id, body.deal_price_minor, body.duration_seconds)
    return await service(ctx).change(principal, stream_id, command)


@router.delete("/showcase/products/{product_id}/deal", response_model=ShowcaseOut,
               responses=CHANGES)
async def end_deal(stream_id: IdPath, product_id: IdPath, principal: RequireUser, ctx: Ctx) -> Any:
    return await service(ctx).change(principal, stream_id, rules.EndDeal(product_id))


@router.put("/showcase/pinned-message", response_model=ShowcaseOut, responses=CHANGES)
async def pin_message(stream_id: IdPath, body: PinMessageIn, principal: RequireUser,
                      ctx: Ctx) -> Any:
    # The service reads the message itself; only its id counts here.
    wanted = rules.PinnedMessage(body.message_id, 0, "", "", "", ctx.clock.now())
    return await service(ctx).change(principal, stream_id, rules.PinMessage(wanted))


@router.delete("/showcase/pinned-message", response_model=ShowcaseOut, responses=CHANGES)
async def unpin_message(stream_id: IdPath, principal: RequireUser, ctx: Ctx) -> Any:
    return await service(ctx).change(principal, stream_id, rules.UnpinMessage())
