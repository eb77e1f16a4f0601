"""`checkout-saga catalog ...`: set and list the cart's product offers (what carts are priced at).

Talks to the database only: CHECKOUT_DATABASE_URL when set, else a running `checkout-saga dev`.
Stock lives elsewhere (`checkout-saga stock set`): a product shoppers can order needs both.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.types import Currency, Money, Sku, VendorId
from ops.cli.admin import run_on_database
from services.cart import catalog
from services.cart.domain import HOUSE_VENDOR, MAX_ITEM_QUANTITY, Offer

T = TypeVar("T")

catalog_cli = typer.Typer(
    help="Set and list product offers: price, currency, active, vendor, units per cart.",
    no_args_is_help=True,
)


def _valid(kind: TypeAdapter[T], value: str, option: str) -> T:
    try:
        return kind.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise typer.BadParameter(f"{value!r}: {reason}", param_hint=option) from None


def _echo(offers: list[Offer]) -> None:
    header = f"{'SKU':<24} {'PRICE':>10} {'CUR':<4} {'ACTIVE':<7} {'MAX':>3} {'MOQ':>3}"
    typer.echo(f"{header} {'VENDOR':<16} OFFER")
    for o in offers:
        active = "yes" if o.active else "no"
        terms = f"{o.unit_price:>10} {o.currency:<4} {active:<7} {o.max_qty:>3} {o.moq:>3}"
        typer.echo(f"{o.sku:<24} {terms} {o.vendor_id:<16} {o.offer_id}")


@catalog_cli.command("set")
def catalog_set(
    sku: Annotated[str, typer.Argument(help="Product id, e.g. DEMO-KEYBOARD.")],
    price: Annotated[str, typer.Option(help="Unit price, e.g. 49.90 (at most 2 decimals).")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "EUR",
    inactive: Annotated[bool, typer.Option("--inactive", help="Stop selling it.")] = False,
    max_qty: Annotated[
        int, typer.Option(min=1, max=MAX_ITEM_QUANTITY, help="Units one cart may hold.")
    ] = MAX_ITEM_QUANTITY,
    vendor: Annotated[
        str, typer.Option(help="The vendor selling it (its buyer id cannot buy it).")
    ] = HOUSE_VENDOR,
    moq: Annotated[
        int, typer.Option(min=1, help="Minimum order quantity: fewer units are refused.")
    ] = 1,
) -> None:
    """Create or change a product's offer; a new price, currency or vendor gets a new offer id."""
    sku = _valid(TypeAdapter(Sku), sku, "SKU")
    unit_price = _valid(TypeAdapter[Decimal](Money), price, "--price")
    code = _valid(TypeAdapter(Currency), currency, "--currency")
    vendor_id = _valid(TypeAdapter(VendorId), vendor, "--vendor")
    if moq > max_qty:
        raise typer.BadParameter(f"{moq} is above --max-qty ({max_qty})", param_hint="--moq")

    async def work(conn: AsyncConnection) -> Offer:
        return await catalog.set_offer(
            conn,
            sku,
            unit_price,
            code,
            active=not inactive,
            max_qty=max_qty,
            vendor_id=vendor_id,
            moq=moq,
        )

    _echo([run_on_database(work)])


@catalog_cli.command("list")
def catalog_list() -> None:
    """Every offer, by SKU."""
    _echo(run_on_database(catalog.list_offers))
