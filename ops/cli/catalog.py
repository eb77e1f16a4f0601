"""`checkout-saga catalog ...`: set and list the cart's product offers (what carts are priced at).

Talks to the database: CHECKOUT_DATABASE_URL when set, else a running `checkout-saga dev`; and,
after a change, to the cart cache, since promotions, tax and shipping read an offer's category,
brand and weight (see ops/cli/pricing.py). Stock lives elsewhere (`checkout-saga stock set`): a
product shoppers can order needs both.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.types import Currency, Money, Sku, VendorId
from ops.cli.admin import run_on_database
from ops.cli.pricing import run_change
from services.cart import catalog
from services.cart.domain import HOUSE_VENDOR, MAX_ITEM_QUANTITY, Offer
from services.cart.rules_checks import MAX_LIMIT, label_problem

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


def _echo(offers: list[Offer], attributes: bool = False) -> None:
    header = f"{'SKU':<24} {'PRICE':>10} {'CUR':<4} {'ACTIVE':<7} {'MAX':>3} {'MOQ':>3}"
    wide = f" {'CATEGORY':<16} {'BRAND':<16} {'GRAMS':>7}" if attributes else ""
    typer.echo(f"{header} {'VENDOR':<16}{wide} OFFER")
    for o in offers:
        active = "yes" if o.active else "no"
        terms = f"{o.unit_price:>10} {o.currency:<4} {active:<7} {o.max_qty:>3} {o.moq:>3}"
        # "-" for none keeps every row the same number of words.
        also = f" {o.category or '-':<16} {o.brand or '-':<16} {o.weight_grams:>7}"
        typer.echo(
            f"{o.sku:<24} {terms} {o.vendor_id:<16}{also if attributes else ''} {o.offer_id}"
        )


def _label(value: str | None, option: str) -> str | None:
    """An attribute as given: None when not given, "" to clear it, else a valid label."""
    if not value:
        return value
    problem = label_problem(option.removeprefix("--"), value)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint=option)
    return value


def _kept(given: str | None, current: str | None) -> str | None:
    """The given attribute, the current one when none is given, and none when "" is given."""
    if given is None:
        return current
    return given or None


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
    category: Annotated[
        str | None,
        typer.Option(
            help='What promotions and tax rates select by; kept when not given, "" clears.'
        ),
    ] = None,
    brand: Annotated[
        str | None,
        typer.Option(help='What promotions select by; kept when not given, "" clears it.'),
    ] = None,
    weight_grams: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_LIMIT,
            help="Unit weight for shipping bands; kept when not given (new: 0).",
        ),
    ] = None,
) -> None:
    """Create or change a product's offer; a new price, currency or vendor gets a new offer id.

    Category, brand and weight are kept when not given: a new price must not silently drop the
    category a reduced tax rate depends on.
    """
    sku = _valid(TypeAdapter(Sku), sku, "SKU")
    unit_price = _valid(TypeAdapter[Decimal](Money), price, "--price")
    code = _valid(TypeAdapter(Currency), currency, "--currency")
    vendor_id = _valid(TypeAdapter(VendorId), vendor, "--vendor")
    if moq > max_qty:
        raise typer.BadParameter(f"{moq} is above --max-qty ({max_qty})", param_hint="--moq")
    category, brand = _label(category, "--category"), _label(brand, "--brand")

    async def work(conn: AsyncConnection) -> Offer:
        current = (await catalog.get_offers(conn, [sku])).get(sku)
        return await catalog.set_offer(
            conn,
            sku,
            unit_price,
            code,
            active=not inactive,
            max_qty=max_qty,
            vendor_id=vendor_id,
            moq=moq,
            category=_kept(category, current.category if current else None),
            brand=_kept(brand, current.brand if current else None),
            weight_grams=_weight(weight_grams, current),
        )

    shown = (category, brand, weight_grams) != (None, None, None)
    # A change, not a plain write: carts' totals read the current offer's attributes.
    _echo([run_change(work)], attributes=shown)


def _weight(given: int | None, current: Offer | None) -> int:
    if given is not None:
        return given
    return current.weight_grams if current is not None else 0


@catalog_cli.command("list")
def catalog_list(
    attributes: Annotated[
        bool, typer.Option("--attributes", help="Also show category, brand and weight.")
    ] = False,
) -> None:
    """Every offer, by SKU."""
    _echo(run_on_database(catalog.list_offers), attributes)
