"""Constrained scalar types shared by every message: ids, SKUs, money, currency, quantities."""

from decimal import Decimal
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
BuyerId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$", max_length=320)]
