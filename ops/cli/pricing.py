"""`checkout-saga pricing ...`: the shop's pricing rules from a rules file; listed, exported, switched off.

`load FILE` stores every rule of a JSON rules file (docs/pricing-rules.md) in one transaction:
all of them, or none when one is refused; loading the same file again changes nothing. `export`
prints the rules as such a file. Talks to the database (as `catalog` does) and, after a change,
to the cart cache (CHECKOUT_CART__CACHE_URL, else the running `checkout-saga dev`'s), so that
every cart's totals are recomputed with the new rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ops.admin.pricing_rules import (
    PromotionRule,
    PromotionView,
    RulesDocument,
    ShippingMethodRule,
    TaxRateRule,
)
from ops.cli import stack
from ops.cli.admin import run_with_engine
from services.cart import rules_admin
from services.cart.cache import cart_cache
from services.cart.rules_checks import RuleRefusedError
from services.platform.settings import Settings

T = TypeVar("T")

pricing_cli = typer.Typer(
    help="The shop's pricing rules: promotions, shipping methods, tax rates (docs/pricing-rules.md).",
    no_args_is_help=True,
)


def run_change(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction; once committed, every cached cart's totals are stale.

    A rule refused (RuleRefusedError) is said on stderr, nothing is stored, and the exit is 1.
    """
    settings = stack.resolve(Settings()).settings

    async def change(engine: AsyncEngine) -> T:
        async with engine.begin() as conn:
            result = await work(conn)
        if result is not None:  # None: nothing was found to change
            await forget_cached_totals(settings)
        return result

    try:
        return run_with_engine(change)
    except RuleRefusedError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None


async def forget_cached_totals(settings: Settings) -> None:
    """Bump the cart cache's rules generation; a warning when the cache does not answer."""
    cache = cart_cache(settings.cart)
    try:
        await cache.invalidate_rules()
        failed = cache.counts().get("errors", 0) > 0
    finally:
        await cache.close()
    if failed:
        ttl = settings.cart.cache_ttl_s
        typer.echo(
            f"warning: the cart cache did not answer; cached carts show their old totals for "
            f"up to {ttl:g} s (CHECKOUT_CART__CACHE_TTL_S)",
            err=True,
        )


@dataclass(frozen=True)
class Loaded:
    """How many rules of each kind a file stored."""

    promotions: int
    methods: int
    rates: int

    def __str__(self) -> str:
        return (
            f"{_count(self.promotions, 'promotion')}, {_count(self.methods, 'shipping method')} "
            f"and {_count(self.rates, 'tax rate table')}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


async def store(conn: AsyncConnection, document: RulesDocument) -> Loaded:
    """Store every rule of the document (rates, then methods, then promotions)."""
    for rate in document.tax_rates:
        await rules_admin.put_tax_rate(conn, rate.area, rate.rule())
    for method in document.shipping_methods:
        await rules_admin.put_shipping_method(
            conn, method.rule(), method.currency, active=method.active
        )
    for promotion in document.promotions:
        await rules_admin.put_promotion(conn, promotion.rule(), active=promotion.active)
    rules = document.promotions, document.shipping_methods, document.tax_rates
    return Loaded(*(len(kind) for kind in rules))


def _document(path: Path) -> RulesDocument:
    try:
        return RulesDocument.model_validate_json(path.read_bytes())
    except OSError as exc:
        typer.echo(f"refused: {path}: {exc.strerror or exc}", err=True)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "the file"
            typer.echo(f"refused: {path}: {where}: {error['msg']}", err=True)
    raise typer.Exit(1)


@pricing_cli.command("load")
def pricing_load(
    path: Annotated[Path, typer.Argument(help="A JSON rules file (docs/pricing-rules.md).")],
) -> None:
    """Store every rule of a rules file: all of them, or none when one is refused."""
    document = _document(path)

    async def work(conn: AsyncConnection) -> Loaded:
        return await store(conn, document)

    typer.echo(f"stored {run_change(work)} from {path}")


@dataclass(frozen=True)
class Rules:
    """Every stored rule, as the admin API shows them."""

    promotions: list[PromotionView]
    methods: list[ShippingMethodRule]
    rates: list[TaxRateRule]

    def document(self) -> RulesDocument:
        """The rules as a rules file; promotions without their uses (the checkouts', not a rule)."""
        promotions = [
            PromotionRule.model_validate(p.model_dump(exclude={"uses"})) for p in self.promotions
        ]
        return RulesDocument(
            promotions=promotions, shipping_methods=self.methods, tax_rates=self.rates
        )


async def _rules(conn: AsyncConnection) -> Rules:
    return Rules(
        [PromotionView.of(p) for p in await rules_admin.list_promotions(conn)],
        [ShippingMethodRule.of(m) for m in await rules_admin.list_shipping_methods(conn)],
        [TaxRateRule.of(r) for r in await rules_admin.list_tax_rates(conn)],
    )


@pricing_cli.command("export")
def pricing_export() -> None:
    """Print every rule as a rules file, which `load` takes back as it is."""
    rules = run_with_engine(_read(_rules))
    typer.echo(rules.document().model_dump_json(indent=2))


def _read(work: Callable[[AsyncConnection], Awaitable[T]]) -> Callable[[AsyncEngine], Awaitable[T]]:
    async def read(engine: AsyncEngine) -> T:
        async with engine.connect() as conn:
            return await work(conn)

    return read


@pricing_cli.command("list")
def pricing_list() -> None:
    """Every promotion (codes in full, uses), shipping method and tax rate table, as tables."""
    typer.echo("\n".join(_tables(run_with_engine(_read(_rules)))))


def _tables(rules: Rules) -> list[str]:
    lines = [
        f"{'PROMOTION':<24} {'CODE':<20} {'KIND':<10} {'VALUE':>8} {'STACKING':<9} "
        f"{'PRIO':>4} {'ACTIVE':<6} {'USES':>6}"
    ]
    for p in rules.promotions:
        lines.append(
            f"{p.promotion_id:<24} {p.code or '-':<20} {p.kind.value:<10} {p.value:>8} "
            f"{p.stacking.value:<9} {p.priority:>4} {_yes(p.active):<6} {p.uses:>6}"
        )
    lines.append(
        f"\n{'SHIPPING METHOD':<24} {'CUR':<4} {'ACTIVE':<6} {'SERVES':<24} BANDS (g: price)"
    )
    for m in rules.methods:
        bands = ", ".join(f"{b.up_to_grams}: {b.price}" for b in m.bands)
        serves = ",".join(m.serves)
        lines.append(f"{m.method_id:<24} {m.currency:<4} {_yes(m.active):<6} {serves:<24} {bands}")
    lines.append(f"\n{'TAX AREA':<10} {'STANDARD':>9}  BY CATEGORY")
    for r in rules.rates:
        categories = ", ".join(f"{name}: {rate}" for name, rate in r.by_category.items()) or "-"
        lines.append(f"{r.area:<10} {r.standard:>9}  {categories}")
    return lines


def _yes(active: bool) -> str:
    return "yes" if active else "no"


def _unknown(what: str) -> None:
    typer.echo(f"no {what}", err=True)
    raise typer.Exit(1)


@pricing_cli.command("deactivate-promotion")
def pricing_deactivate_promotion(
    promotion_id: Annotated[str, typer.Argument(help="The promotion's id.")],
) -> None:
    """Stop a promotion applying; its code stays reserved (load it again to reactivate it)."""
    found = run_change(lambda conn: rules_admin.deactivate_promotion(conn, promotion_id))
    if found is None:
        _unknown(f"promotion {promotion_id}")
    typer.echo(f"promotion {promotion_id} deactivated")


@pricing_cli.command("deactivate-method")
def pricing_deactivate_method(
    method_id: Annotated[str, typer.Argument(help="The shipping method's id.")],
) -> None:
    """Stop offering a shipping method (load it again to offer it again)."""
    found = run_change(lambda conn: rules_admin.deactivate_shipping_method(conn, method_id))
    if found is None:
        _unknown(f"shipping method {method_id}")
    typer.echo(f"shipping method {method_id} deactivated")


@pricing_cli.command("delete-rate")
def pricing_delete_rate(
    area: Annotated[str, typer.Argument(help='A country ("DE") or region ("US-CA").')],
) -> None:
    """Remove an area's tax rates: carts shipping there are refused until it has some again."""

    async def work(conn: AsyncConnection) -> bool | None:
        return await rules_admin.delete_tax_rate(conn, area) or None

    if run_change(work) is None:
        _unknown(f"tax rates for {area}")
    typer.echo(f"tax rates of {area} deleted")
