"""Constrained scalar types shared by every message: ids, SKUs, money, currency, quantities."""

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

MAX_LINE_ITEMS = 100
"""A checkout holds at most this many distinct line items; more is rejected, not truncated."""

MAX_QUANTITY = 1000
"""Quantity of one line item; a bound that keeps a typo from reserving a warehouse."""

Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]
Money = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
NO_NUL = r"^[^\x00]*$"
"""Free text must not hold NUL: PostgreSQL's text cannot store it, so the contract refuses it
with a reason instead of the database refusing the transaction that applies it."""

BuyerId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)]
VendorId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)]
"""A marketplace vendor (seller); the same space as buyer ids, so one party can be both."""
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=NO_NUL)]
Email = Annotated[
    str, StringConstraints(pattern=r"^[^@\s\x00]{1,64}@[^@\s\x00]{1,255}$", max_length=320)
]


class CheckoutPolicy(StrEnum):
    """What a checkout does when some lines cannot be reserved."""

    ALL_OR_NOTHING = "all_or_nothing"
    """Any line short: nothing is reserved and every vendor order fails (the default)."""
    PARTIAL = "partial"
    """Short lines are rejected with a reason; the rest goes on, each vendor order on its own."""


class RejectionReason(StrEnum):
    """Why one line of a partial checkout was rejected."""

    INSUFFICIENT_STOCK = "insufficient_stock"
    UNAVAILABLE = "unavailable"


TotalAmount = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]
"""A sum of amounts in whole cents, zero allowed (an order whose every line was rejected)."""
