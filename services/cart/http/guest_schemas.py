"""Bodies of the guest routes: a new guest session, and a guest cart's merge into a buyer's."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from services.cart.guest_rules import LeftOut, MergedLine, Misfit
from services.cart.http.schemas import CartOut, RequestBody
from services.cart.merging import Merge
from services.cart.quote import CartQuote


class GuestSessionOut(BaseModel):
    """A guest's token: send it as `Authorization: Guest <token>` until it expires."""

    token: str = Field(description="Opaque and unguessable; only its hash is stored.")
    expires_at: datetime


class MergeRequest(RequestBody):
    """The guest token whose cart the signed-in buyer takes over."""

    guest_token: Annotated[str, Field(min_length=1, max_length=256)]


class MergedLineOut(BaseModel):
    """A guest line taken into the buyer's cart."""

    sku: str
    added: int = Field(description="Units the guest cart brought.")
    qty: int = Field(description="Units of the line in the buyer's cart now.")
    snapshot_captured_at: datetime = Field(description="The newer of the two snapshots, kept.")

    @classmethod
    def of(cls, line: MergedLine) -> MergedLineOut:
        """The API shape of a merged line."""
        return cls(
            sku=line.sku,
            added=line.added,
            qty=line.quantity,
            snapshot_captured_at=line.snapshot.captured_at,
        )


class LeftOutOut(BaseModel):
    """A guest line that did not fit the buyer's cart; the buyer's cart is unchanged by it."""

    sku: str
    qty: int
    reason: Misfit
    detail: str

    @classmethod
    def of(cls, line: LeftOut) -> LeftOutOut:
        """The API shape of a line left out."""
        return cls(sku=line.sku, qty=line.quantity, reason=line.reason, detail=line.detail)


class MergeOut(BaseModel):
    """What the merge did; a retry of the same merge answers exactly this again."""

    guest_cart_id: uuid.UUID | None = Field(description="The guest cart closed (now `merged`).")
    merged: list[MergedLineOut]
    not_merged: list[LeftOutOut]
    cart: CartOut | None = Field(description="The buyer's cart after the merge (None: none).")

    @classmethod
    def of(cls, merge: Merge, quote: CartQuote | None) -> MergeOut:
        """The API shape of a merge."""
        return cls(
            guest_cart_id=merge.guest_cart_id,
            merged=[MergedLineOut.of(line) for line in merge.merged],
            not_merged=[LeftOutOut.of(line) for line in merge.left_out],
            cart=CartOut.of(merge.cart, quote) if merge.cart and quote else None,
        )
