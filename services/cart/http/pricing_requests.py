"""Request bodies of the cart's pricing routes: a coupon code, a delivery choice."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from services.cart.http.schemas import RequestBody

Code = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^\s*[A-Za-z0-9][A-Za-z0-9_-]*\s*$",
        description="A coupon code (letters, digits, - and _; compared case-insensitively).",
    ),
]


class CouponIn(RequestBody):
    """A code to enter on the cart."""

    code: Code


class DeliveryIn(RequestBody):
    """Where the cart ships and how; null parts are not chosen (yet)."""

    country: str | None = Field(
        default=None, description='ISO 3166-1 alpha-2, e.g. "DE".', min_length=2, max_length=2
    )
    region: str | None = Field(
        default=None, description='ISO 3166-2 subdivision, e.g. "US-CA".', max_length=16
    )
    shipping_method: str | None = Field(default=None, min_length=1, max_length=64)
