"""`checkout-saga pricing` (rules files, export, list, switching off) and the catalog's attributes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from ops.cli import cli
from services.cart import catalog, rules_admin
from services.cart.cache import RULES_KEY
from services.cart.promotion_types import DiscountKind, Promotion, Selection, Stacking
from services.cart.shipping import ShippingMethod, WeightBand
from services.cart.tables import promotion_uses, promotions, shipping_methods, tax_rates
from services.cart.tax import RateTable
from tests.api import new_sku

D = Decimal


@dataclass
class Rules:
    """Ids of one test's rules (the rules are the whole shop's: unique, and deleted after)."""

    promotion_id: str
    code: str
    method_id: str
    area: str

    def document(self, **promotion: Any) -> dict[str, Any]:
        """A rules file with one rule of each kind."""
        return {
            "promotions": [
                {
                    "promotion_id": self.promotion_id,
                    "code": self.code.lower(),
                    "kind": "percentage",
                    "value": "10",
                    "stacking": "best_of",
                    "target": {"categories": ["books"]},
                    "valid_from": "2026-12-01T00:00:00Z",
                    **promotion,
                }
            ],
            "shipping_methods": [
                {
                    "method_id": self.method_id,
                    "name": "Standard",
                    "currency": "EUR",
                    "serves": ["DE", "AT"],
                    "bands": [{"up_to_grams": 2000, "price": "4.90"}],
                    "free_from": "50.00",
                }
            ],
            "tax_rates": [
                {"area": self.area, "standard": "0.19", "by_category": {"books": "0.07"}}
            ],
        }


@pytest.fixture
async def rules(
    engine: AsyncEngine, migrated_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rules]:
    """Fresh ids; the CLI pointed at the test database and cache."""
    monkeypatch.setenv("CHECKOUT_DATABASE_URL", migrated_url)
    monkeypatch.setenv("CHECKOUT_CART__CACHE_URL", redis_url)
    suffix = uuid.uuid4().hex[:10].upper()
    made = Rules(f"promo-{suffix}", f"CODE-{suffix}", f"std-{suffix}", f"ZZ-{suffix[:3]}")
    yield made
    async with engine.begin() as conn:
        for table, column, value in (
            (promotions, promotions.c.promotion_id, made.promotion_id),
            (promotion_uses, promotion_uses.c.promotion_id, made.promotion_id),
            (shipping_methods, shipping_methods.c.method_id, made.method_id),
            (tax_rates, tax_rates.c.area, made.area),
        ):
            await conn.execute(delete(table).where(column == value))


async def run(*args: str) -> Result:
    """The CLI, in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


async def generation(redis_url: str) -> int:
    """The cart cache's rules generation."""
    client = Redis.from_url(redis_url)
    try:
        return int(await client.get(RULES_KEY) or 0)
    finally:
        await client.aclose()


def write(tmp_path: Path, document: dict[str, Any] | str) -> Path:
    """A rules file with this content."""
    path = tmp_path / "rules.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


async def test_a_rules_file_is_stored_as_the_engine_reads_it_and_loads_again_idempotently(
    rules: Rules, engine: AsyncEngine, redis_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path, rules.document())
    before = await generation(redis_url)

    first = await run("pricing", "load", str(path))
    second = await run("pricing", "load", str(path))

    for result in (first, second):
        assert result.exit_code == 0, result.output
        stored = f"stored 1 promotion, 1 shipping method and 1 tax rate table from {path}\n"
        assert result.stdout == stored
    assert await generation(redis_url) == before + 2  # once per committed load
    async with engine.connect() as conn:
        promotion = await rules_admin.get_promotion(conn, rules.promotion_id)
        method = await rules_admin.get_shipping_method(conn, rules.method_id)
        rate = await rules_admin.get_tax_rate(conn, rules.area)
    assert promotion == rules_admin.StoredPromotion(
        Promotion(
            rules.promotion_id,
            rules.code,
            DiscountKind.PERCENTAGE,
            D("10"),
            Stacking.BEST_OF,
            target=Selection(categories=frozenset({"books"})),
            valid_from=datetime(2026, 12, 1, tzinfo=UTC),
        ),
        active=True,
        uses=0,
    )
    assert method == rules_admin.StoredMethod(
        ShippingMethod(
            rules.method_id,
            "Standard",
            frozenset({"DE", "AT"}),
            (WeightBand(2000, D("4.90")),),
            free_from=D("50.00"),
        ),
        "EUR",
        active=True,
    )
    assert rate == rules_admin.StoredRate(rules.area, RateTable(D("0.19"), {"books": D("0.07")}))


async def test_a_file_with_a_refused_rule_stores_none_of_its_rules(
    rules: Rules, engine: AsyncEngine, redis_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path, rules.document(value="150"))
    before = await generation(redis_url)

    result = await run("pricing", "load", str(path))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"refused: promotion {rules.promotion_id}: a percentage must be above 0" in result.stderr
    assert await generation(redis_url) == before
    async with engine.connect() as conn:
        # The method and rate came first in the transaction: rolled back with it.
        assert await rules_admin.get_shipping_method(conn, rules.method_id) is None
        assert await rules_admin.get_tax_rate(conn, rules.area) is None


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{not json", "the file: Invalid JSON"),
        ({"promotions": [], "coupons": []}, "coupons: Extra inputs are not permitted"),
        ({"tax_rates": [{"area": "DE"}]}, "tax_rates.0.standard: Field required"),
        (
            {"tax_rates": [{"area": "XZ", "standard": 0}, {"area": "XZ", "standard": 0}]},
            "tax area XZ appears twice",
        ),
    ],
)
async def test_a_malformed_rules_file_is_refused_with_where_and_why(
    rules: Rules, tmp_path: Path, content: dict[str, Any] | str, complaint: str
) -> None:
    path = write(tmp_path, content)
    result = await run("pricing", "load", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"refused: {path}: ")
    assert complaint in result.stderr


async def test_a_missing_file_is_refused(rules: Rules, tmp_path: Path) -> None:
    result = await run("pricing", "load", str(tmp_path / "nowhere.json"))
    assert result.exit_code == 1
    assert "No such file or directory" in result.stderr


async def test_export_prints_a_rules_file_that_loads_back(
    rules: Rules, tmp_path: Path, engine: AsyncEngine
) -> None:
    assert (await run("pricing", "load", str(write(tmp_path, rules.document())))).exit_code == 0

    exported = await run("pricing", "export")

    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.stdout)
    [promotion] = [p for p in document["promotions"] if p["promotion_id"] == rules.promotion_id]
    assert (promotion["code"], promotion["value"], promotion["min_spend"]) == (
        rules.code,
        "10",
        "0.00",
    )
    assert "uses" not in promotion
    mine = {
        "promotions": [promotion],
        "shipping_methods": [
            m for m in document["shipping_methods"] if m["method_id"] == rules.method_id
        ],
        "tax_rates": [r for r in document["tax_rates"] if r["area"] == rules.area],
    }
    async with engine.connect() as conn:
        before = await rules_admin.get_promotion(conn, rules.promotion_id)
    again = await run("pricing", "load", str(write(tmp_path, mine)))
    assert again.exit_code == 0, again.output
    async with engine.connect() as conn:
        assert await rules_admin.get_promotion(conn, rules.promotion_id) == before


async def test_list_deactivate_and_delete(
    rules: Rules, tmp_path: Path, engine: AsyncEngine, redis_url: str
) -> None:
    assert (await run("pricing", "load", str(write(tmp_path, rules.document())))).exit_code == 0
    async with engine.begin() as conn:
        await conn.execute(promotion_uses.insert().values(promotion_id=rules.promotion_id, uses=4))

    listed = await run("pricing", "list")

    assert listed.exit_code == 0, listed.output
    [line] = [ln for ln in listed.stdout.splitlines() if ln.startswith(rules.promotion_id)]
    words = [rules.promotion_id, rules.code, "percentage", "10", "best_of", "0", "yes", "4"]
    assert line.split() == words
    [line] = [ln for ln in listed.stdout.splitlines() if ln.startswith(rules.method_id)]
    assert line.split() == [rules.method_id, "EUR", "yes", "AT,DE", "2000:", "4.90"]
    [line] = [ln for ln in listed.stdout.splitlines() if ln.startswith(rules.area)]
    assert line.split() == [rules.area, "0.19", "books:", "0.07"]

    before = await generation(redis_url)
    done = [
        await run("pricing", "deactivate-promotion", rules.promotion_id),
        await run("pricing", "deactivate-method", rules.method_id),
        await run("pricing", "delete-rate", rules.area),
    ]
    assert [r.exit_code for r in done] == [0, 0, 0], [r.output for r in done]
    assert await generation(redis_url) == before + 3
    async with engine.connect() as conn:
        promotion = await rules_admin.get_promotion(conn, rules.promotion_id)
        method = await rules_admin.get_shipping_method(conn, rules.method_id)
        assert await rules_admin.get_tax_rate(conn, rules.area) is None
    assert promotion is not None
    assert (promotion.active, promotion.uses) == (False, 4)
    assert method is not None
    assert not method.active

    unknown = [
        await run("pricing", "deactivate-promotion", "no-such-promotion"),
        await run("pricing", "deactivate-method", "no-such-method"),
        await run("pricing", "delete-rate", rules.area),
    ]
    assert [r.exit_code for r in unknown] == [1, 1, 1]
    assert unknown[0].stderr.endswith("no promotion no-such-promotion\n")
    assert unknown[2].stderr.endswith(f"no tax rates for {rules.area}\n")
    assert await generation(redis_url) == before + 3


async def test_catalog_set_keeps_the_attributes_it_is_not_given(
    rules: Rules, engine: AsyncEngine, redis_url: str
) -> None:
    sku, before = new_sku(), await generation(redis_url)
    attributes = ["--category", "books", "--brand", "Acme Press", "--weight-grams", "450"]

    created = await run("catalog", "set", sku, "--price", "12.00", *attributes)
    repriced = await run("catalog", "set", sku, "--price", "11.00")
    listed = await run("catalog", "list", "--attributes")

    for result in (created, repriced, listed):
        assert result.exit_code == 0, result.output
    header = created.stdout.splitlines()[0].split()
    assert header[6:] == ["VENDOR", "CATEGORY", "BRAND", "GRAMS", "OFFER"]
    assert repriced.stdout.splitlines()[0].split()[6:] == ["VENDOR", "OFFER"]
    [line] = [ln for ln in listed.stdout.splitlines() if ln.startswith(sku)]
    assert line.split()[1:11] == [
        "11.00",
        "EUR",
        "yes",
        "20",
        "1",
        "house",
        "books",
        "Acme",
        "Press",
        "450",
    ]
    assert await generation(redis_url) == before + 2

    cleared = await run("catalog", "set", sku, "--price", "11.00", "--brand", "")
    assert cleared.exit_code == 0, cleared.output
    async with engine.connect() as conn:
        offer = (await catalog.get_offers(conn, [sku]))[sku]
    assert (offer.category, offer.brand, offer.weight_grams) == ("books", None, 450)


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--category", "\t"], "--category"),
        (["--brand", "x" * 129], "--brand"),
        (["--weight-grams", "-1"], "--weight-grams"),
        (["--weight-grams", str(2**31)], "--weight-grams"),
    ],
)
def test_catalog_set_refuses_bad_attributes(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(cli, ["catalog", "set", "SKU-1", "--price", "1", *args])
    assert result.exit_code == 2
    assert complaint in result.output
