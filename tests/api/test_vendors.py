"""Vendors in the catalog: the vendor and MOQ of offers, and what checkout refuses because of them."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from contracts import LineItem
from ops.cli.catalog import catalog_cli
from services.cart import catalog
from services.cart import repository as repo
from tests.api import Shopper, field_errors, new_sku, offer


async def _offer_id(engine: AsyncEngine, sku: str) -> uuid.UUID:
    async with engine.connect() as conn:
        return (await catalog.get_offers(conn, [sku]))[sku].offer_id


async def test_an_offer_has_a_vendor_and_a_moq_and_a_vendor_change_is_new_terms(
    engine: AsyncEngine,
) -> None:
    sku = await offer(engine, vendor="acme", moq=2, max_qty=6)
    async with engine.connect() as conn:
        first = (await catalog.get_offers(conn, [sku]))[sku]
    assert (first.vendor_id, first.moq, first.max_qty) == ("acme", 2, 6)

    await offer(engine, sku, vendor="acme", moq=3, max_qty=6)
    assert await _offer_id(engine, sku) == first.offer_id  # MOQ is checked, not snapshotted
    await offer(engine, sku, vendor="globex", moq=3, max_qty=6)
    assert await _offer_id(engine, sku) != first.offer_id


async def test_offers_default_to_the_house_vendor_and_a_moq_of_one(engine: AsyncEngine) -> None:
    sku = new_sku()
    async with engine.begin() as conn:
        made = await catalog.set_offer(conn, sku, Decimal("1.00"), "EUR")
    assert (made.vendor_id, made.moq) == ("house", 1)


async def test_a_line_snapshots_the_vendor(shopper: Shopper, engine: AsyncEngine) -> None:
    sku = await offer(engine, vendor="initech")

    cart = (await shopper.add(sku)).json()

    assert cart["items"][0]["snapshot"]["vendor_id"] == "initech"


async def test_a_buyer_cannot_add_from_their_own_vendor_store(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    own = await offer(engine, vendor=shopper.buyer_id)

    added = await shopper.add(own)
    replaced = await shopper.request(
        "PUT", "/cart", {"items": [{"sku": own, "qty": 1}]}, Idempotency_Key="own"
    )

    assert (added.status_code, replaced.status_code) == (422, 422)
    assert "own vendor store" in field_errors(added)["sku"]
    assert "own vendor store" in field_errors(replaced)["items.0.sku"]
    assert await shopper.items() == {}


async def test_checkout_refuses_a_line_of_the_buyers_own_store(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    # Only a cart filled without the API (an upstream) can hold such a line: adding refuses it.
    sku = await offer(engine, price="4.00", vendor=shopper.buyer_id)
    line = LineItem(sku=sku, quantity=1, unit_price=Decimal("4.00"), vendor_id=shopper.buyer_id)
    async with engine.begin() as conn:
        await repo.create_cart(conn, shopper.buyer_id, "EUR", [line])

    response = await shopper.checkout()

    assert response.status_code == 422, response.text
    assert "own vendor store" in field_errors(response)["items.0.sku"]
    assert (await shopper.cart()).json()["status"] == "active"


async def test_below_the_moq_may_sit_in_the_cart_but_not_check_out(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    sku = await offer(engine, vendor="acme", moq=3)
    assert (await shopper.add(sku, 1)).status_code == 200

    refused = await shopper.checkout()

    assert refused.status_code == 422
    assert field_errors(refused) == {
        "items.0.qty": f"{sku!r} sells at least 3 units per order (minimum order quantity); "
        "the cart holds 1"
    }
    await shopper.add(sku, 2)
    assert (await shopper.checkout()).status_code == 202


async def test_checkout_gives_one_reason_per_offending_line(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    skus = sorted([new_sku("A"), new_sku("B"), new_sku("C")])
    low = await offer(engine, skus[0], vendor="acme", moq=4)
    fine = await offer(engine, skus[1], vendor="globex")
    capped = await offer(engine, skus[2], vendor="initech", max_qty=10)
    for sku, qty in ((low, 2), (fine, 1), (capped, 8)):
        await shopper.add(sku, qty)
    await offer(engine, capped, vendor="initech", max_qty=5)  # the cap fell since

    response = await shopper.checkout()

    assert response.status_code == 422
    errors = field_errors(response)
    # Fields name the lines as GET /cart lists them (by SKU).
    assert set(errors) == {"items.0.qty", "items.2.qty"}
    assert "at least 4" in errors["items.0.qty"]
    assert "at most 5" in errors["items.2.qty"]
    assert len(response.json()["errors"]) == 2


async def test_a_changed_vendor_refuses_checkout_as_a_change_of_terms(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    sku = await offer(engine, price="5.00", vendor="acme")
    await shopper.add(sku)
    await offer(engine, sku, price="5.00", vendor="globex")

    response = await shopper.checkout()

    assert response.status_code == 409
    [difference] = response.json()["differences"]
    assert (difference["change"], difference["snapshot_vendor_id"]) == ("vendor_changed", "acme")
    assert difference["current_vendor_id"] == "globex"


def test_catalog_cli_sets_and_lists_vendor_and_moq(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKOUT_DATABASE_URL", migrated_url)
    runner, sku = CliRunner(), new_sku()
    args = ["set", sku, "--price", "9.90", "--vendor", "acme", "--moq", "2", "--max-qty", "6"]

    created = runner.invoke(catalog_cli, args)
    defaulted = runner.invoke(catalog_cli, ["set", sku, "--price", "9.90"])
    listed = runner.invoke(catalog_cli, ["list"])

    assert (created.exit_code, defaulted.exit_code, listed.exit_code) == (0, 0, 0), created.output
    assert created.stdout.splitlines()[0].split()[5:] == ["MOQ", "VENDOR", "OFFER"]
    assert created.stdout.splitlines()[1].split()[1:7] == ["9.90", "EUR", "yes", "6", "2", "acme"]
    [line] = [ln for ln in listed.stdout.splitlines() if ln.startswith(sku)]
    assert line.split()[4:7] == ["20", "1", "house"]
    assert created.stdout.split()[-1] != line.split()[-1]  # another vendor, another offer


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--moq", "0"], "--moq"),
        (["--moq", "6", "--max-qty", "5"], "--moq"),
        (["--vendor", ""], "--vendor"),
    ],
)
def test_catalog_set_refuses_a_bad_vendor_or_moq(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(catalog_cli, ["set", "SKU-1", "--price", "1", *args])
    assert result.exit_code == 2
    assert complaint in result.output
