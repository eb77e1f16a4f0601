"""The pricing rules over the admin API: promotions, shipping methods, tax rates; refusals; the cache."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from services.cart.cache import RULES_KEY
from services.platform.settings import CartApiSettings
from tests.support.infra import redis_server
from tests.support.stack import Admin, Stack

pytestmark = pytest.mark.integration

API = "/admin/v1"


def _suffix() -> str:
    return uuid.uuid4().hex[:10].upper()


@pytest.fixture
async def made(stack: Stack) -> AsyncIterator[dict[str, list[str]]]:
    """Ids of the rules a test makes, deleted after it (the rules are the whole shop's)."""
    ids: dict[str, list[str]] = {"promotions": [], "methods": [], "areas": []}
    yield ids
    for table, column, key in (
        ("promotions", "promotion_id", "promotions"),
        ("promotion_uses", "promotion_id", "promotions"),
        ("shipping_methods", "method_id", "methods"),
        ("tax_rates", "area", "areas"),
    ):
        sql = f"DELETE FROM cart.{table} WHERE {column} = ANY(:ids)"
        await stack.rows_write(sql, ids=ids[key])


def new_promotion(made: dict[str, list[str]]) -> tuple[str, str]:
    """A fresh promotion id and code, cleaned up after the test."""
    suffix = _suffix()
    made["promotions"].append(f"promo-{suffix}")
    return f"promo-{suffix}", f"code-{suffix}"


def new_method(made: dict[str, list[str]]) -> str:
    """A fresh shipping method id, cleaned up after the test."""
    made["methods"].append(method_id := f"parcel-{_suffix()}")
    return method_id


def new_area(made: dict[str, list[str]]) -> str:
    """A tax area of a user-assigned country no real rule uses, cleaned up after the test."""
    made["areas"].append(area := f"ZZ-{_suffix()[:3]}")
    return area


def promotion_body(code: str | None, **changes: Any) -> dict[str, Any]:
    """A promotion using every field."""
    body = {
        "code": code,
        "kind": "percentage",
        "value": "12.50",
        "stacking": "best_of",
        "target": {"skus": ["SKU-B", "SKU-A"], "categories": ["books"]},
        "exclusions": {"brands": ["Acme"]},
        "min_spend": 20,
        "currency": "EUR",
        "valid_from": "2026-12-01T09:00:00+01:00",
        "valid_until": "2027-01-01T00:00:00Z",
        "limit_total": 100,
        "limit_per_buyer": 1,
        "priority": 3,
    }
    return {**body, **changes}


def method_body(**changes: Any) -> dict[str, Any]:
    """A shipping method using every field."""
    body = {
        "name": "Parcel post",
        "currency": "EUR",
        "serves": ["US-CA", "DE"],
        "bands": [{"up_to_grams": 1000, "price": "4.9"}, {"up_to_grams": 31500, "price": 12.9}],
        "min_order_value": "5",
        "max_order_value": None,
        "excluded_skus": ["SOFA-1"],
        "excluded_categories": ["oversized"],
        "free_from": "50.00",
    }
    return {**body, **changes}


async def test_a_promotion_is_put_read_listed_deactivated_and_reactivated(
    admin_client: Admin, made: dict[str, list[str]]
) -> None:
    promotion_id, code = new_promotion(made)
    async with admin_client() as client:
        put = await client.put(f"{API}/promotions/{promotion_id}", json=promotion_body(code))
        assert put.status_code == 200, put.text
        view = put.json()
        assert view == {
            "promotion_id": promotion_id,
            "code": code.upper(),  # the admin sees the code in full, as stored: normalized
            "kind": "percentage",
            "value": "12.5",
            "stacking": "best_of",
            "target": {"skus": ["SKU-A", "SKU-B"], "categories": ["books"], "brands": []},
            "exclusions": {"skus": [], "categories": [], "brands": ["Acme"]},
            "min_spend": "20.00",
            "currency": "EUR",
            "valid_from": "2026-12-01T08:00:00Z",
            "valid_until": "2027-01-01T00:00:00Z",
            "limit_total": 100,
            "limit_per_buyer": 1,
            "priority": 3,
            "active": True,
            "uses": 0,
        }
        assert (await client.get(f"{API}/promotions/{promotion_id}")).json() == view
        assert view in (await client.get(f"{API}/promotions")).json()
        assert view in (await client.get(f"{API}/promotions", params={"active": True})).json()

        stopped = await client.post(f"{API}/promotions/{promotion_id}/deactivate")
        assert stopped.status_code == 200
        assert stopped.json() == {**view, "active": False}
        inactive = (await client.get(f"{API}/promotions", params={"active": False})).json()
        assert promotion_id in {p["promotion_id"] for p in inactive}

        # A view is a valid body: putting it back reactivates the promotion, unchanged.
        body = {k: v for k, v in view.items() if k not in ("promotion_id", "uses")}
        again = await client.put(f"{API}/promotions/{promotion_id}", json=body)
        assert again.json() == view


async def test_an_automatic_fixed_promotion_shows_its_amount_in_cents(
    admin_client: Admin, made: dict[str, list[str]]
) -> None:
    promotion_id, _ = new_promotion(made)
    body = {"kind": "fixed", "value": 5, "stacking": "stackable", "currency": "USD"}
    async with admin_client() as client:
        put = await client.put(f"{API}/promotions/{promotion_id}", json=body)
    assert put.status_code == 200, put.text
    view = put.json()
    assert (view["code"], view["target"], view["value"], view["min_spend"]) == (
        None,
        None,
        "5.00",
        "0.00",
    )


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"value": "150"}, "a percentage must be above 0 and at most 100"),
        ({"kind": "fixed", "value": "5.001"}, "a fixed value must be a positive amount"),
        ({"currency": None}, "a fixed value or a minimum spend needs a currency"),
        ({"valid_from": "2026-12-01T09:00:00"}, "validity bounds must be timezone-aware"),
        ({"valid_until": "2026-11-01T00:00:00Z"}, "valid_until must be after valid_from"),
        ({"currency": "eur"}, "currency 'eur' is not an ISO 4217 code"),
        ({"target": {}}, "a target must name a sku, category or brand"),
        ({"limit_total": 0}, "a usage limit must be at least 1"),
        ({"code": "two words"}, "a code must be 1 to 64 letters, digits, '-' or '_'"),
        ({"kind": "fixed", "value": "1E+40"}, "a number is out of range"),
    ],
)
async def test_a_promotion_the_engine_would_refuse_is_refused_with_its_reason(
    admin_client: Admin, made: dict[str, list[str]], changes: dict[str, Any], detail: str
) -> None:
    promotion_id, code = new_promotion(made)
    async with admin_client() as client:
        refused = await client.put(
            f"{API}/promotions/{promotion_id}", json={**promotion_body(code), **changes}
        )
        assert refused.status_code == 422, refused.text
        assert detail in refused.json()["detail"]
        assert code.upper() not in refused.text
        assert (await client.get(f"{API}/promotions/{promotion_id}")).status_code == 404


async def test_malformed_promotions_get_field_errors(
    admin_client: Admin, made: dict[str, list[str]]
) -> None:
    promotion_id, code = new_promotion(made)
    async with admin_client() as client:
        unknown = await client.put(
            f"{API}/promotions/{promotion_id}", json=promotion_body(code, extra=1)
        )
        wrong_kind = await client.put(
            f"{API}/promotions/{promotion_id}", json=promotion_body(code, kind="bogo")
        )
        bad_id = await client.put(f"{API}/promotions/not%20an%20id", json=promotion_body(code))
        unreadable = await client.put(
            f"{API}/promotions/{promotion_id}",
            content=b"\xff",
            headers={"Content-Type": "application/json"},
        )
    assert [r.status_code for r in (unknown, wrong_kind, bad_id, unreadable)] == [422] * 3 + [400]
    assert unknown.json()["detail"][0]["loc"] == ["body", "extra"]
    assert wrong_kind.json()["detail"][0]["loc"] == ["body", "kind"]
    assert bad_id.json()["detail"][0]["loc"] == ["path", "promotion_id"]


async def test_a_code_another_promotion_has_is_refused_with_409(
    admin_client: Admin, made: dict[str, list[str]]
) -> None:
    holder, code = new_promotion(made)
    other, _ = new_promotion(made)
    async with admin_client() as client:
        assert (
            await client.put(f"{API}/promotions/{holder}", json=promotion_body(code))
        ).is_success
        clash = await client.put(f"{API}/promotions/{other}", json=promotion_body(f" {code} "))
        assert clash.status_code == 409
        assert clash.json()["detail"] == (
            f"promotion {other}: its code is already promotion {holder}'s "
            "(codes are unique, whether their promotion is active or not)"
        )
        assert (await client.get(f"{API}/promotions/{other}")).status_code == 404


async def test_unknown_rules_are_404(admin_client: Admin) -> None:
    async with admin_client() as client:
        answers = [
            await client.get(f"{API}/promotions/no-such-promotion"),
            await client.post(f"{API}/promotions/no-such-promotion/deactivate"),
            await client.get(f"{API}/shipping-methods/no-such-method"),
            await client.post(f"{API}/shipping-methods/no-such-method/deactivate"),
            await client.get(f"{API}/tax-rates/ZZ-0"),
            await client.delete(f"{API}/tax-rates/ZZ-0"),
        ]
    assert [a.status_code for a in answers] == [404] * 6
    assert answers[1].json() == {"detail": "no promotion no-such-promotion"}
    assert answers[5].json() == {"detail": "no tax rates for ZZ-0"}


async def test_a_shipping_method_is_put_read_listed_and_deactivated(
    admin_client: Admin, made: dict[str, list[str]]
) -> None:
    method_id = new_method(made)
    async with admin_client() as client:
        put = await client.put(f"{API}/shipping-methods/{method_id}", json=method_body())
        assert put.status_code == 200, put.text
        view = put.json()
        assert view == {
            "method_id": method_id,
            **method_body(
                serves=["DE", "US-CA"],
                bands=[
                    {"up_to_grams": 1000, "price": "4.90"},
                    {"up_to_grams": 31500, "price": "12.90"},
                ],
                min_order_value="5.00",
            ),
            "active": True,
        }
        assert (await client.get(f"{API}/shipping-methods/{method_id}")).json() == view
        assert view in (await client.get(f"{API}/shipping-methods")).json()

        stopped = await client.post(f"{API}/shipping-methods/{method_id}/deactivate")
        assert stopped.json() == {**view, "active": False}
        active = (await client.get(f"{API}/shipping-methods", params={"active": True})).json()
        assert method_id not in {m["method_id"] for m in active}

        body = {k: v for k, v in view.items() if k != "method_id"}
        assert (await client.put(f"{API}/shipping-methods/{method_id}", json=body)).json() == view


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"serves": []}, "serves no destination"),
        ({"serves": ["Germany"]}, "serves country 'Germany' is not an ISO 3166-1"),
        (
            {"bands": [{"up_to_grams": 5, "price": "1"}, {"up_to_grams": 5, "price": "2"}]},
            "band limits must be non-negative and strictly increase",
        ),
        ({"bands": [{"up_to_grams": 5, "price": "1.999"}]}, "is not a whole number of cents"),
        ({"min_order_value": "100", "max_order_value": "10"}, "minimum order value is above"),
        ({"currency": "EURO"}, "currency 'EURO' is not an ISO 4217 code"),
    ],
)
async def test_a_method_the_shipping_rules_would_refuse_is_refused_with_their_reason(
    admin_client: Admin, made: dict[str, list[str]], changes: dict[str, Any], detail: str
) -> None:
    method_id = new_method(made)
    async with admin_client() as client:
        refused = await client.put(
            f"{API}/shipping-methods/{method_id}", json=method_body(**changes)
        )
        assert refused.status_code == 422, refused.text
        assert detail in refused.json()["detail"]
        assert (await client.get(f"{API}/shipping-methods/{method_id}")).status_code == 404


async def test_tax_rates_are_put_read_listed_and_deleted(
    admin_client: Admin, made: dict[str, list[str]]
) -> None:
    area = new_area(made)
    body = {"standard": "0.0825", "by_category": {"food": 0.025, "books": "0.000"}}
    async with admin_client() as client:
        put = await client.put(f"{API}/tax-rates/{area}", json=body)
        assert put.status_code == 200, put.text
        view = {"area": area, "standard": "0.0825", "by_category": {"books": "0", "food": "0.025"}}
        assert put.json() == view
        assert (await client.get(f"{API}/tax-rates/{area}")).json() == view
        assert view in (await client.get(f"{API}/tax-rates")).json()

        replaced = await client.put(f"{API}/tax-rates/{area}", json={"standard": 0.1})
        assert replaced.json() == {"area": area, "standard": "0.1", "by_category": {}}

        deleted = await client.delete(f"{API}/tax-rates/{area}")
        assert (deleted.status_code, deleted.content) == (204, b"")
        assert (await client.get(f"{API}/tax-rates/{area}")).status_code == 404


@pytest.mark.parametrize(
    ("area", "body", "status", "detail"),
    [
        ("ZZ-ABC", {"standard": "1.5"}, 422, "tax rates of ZZ-ABC: tax rate 1.5 is not a fraction"),
        ("ZZ-ABC", {"standard": "0.1234567"}, 422, "has more than 6 decimals"),
        ("ZZ-ABC", {"standard": "0.1", "by_category": {"\t": "0"}}, 422, "category '\\t' must be"),
        ("ZZ-ABCD", {"standard": "0.1"}, 422, None),
        ("de", {"standard": "0.19"}, 422, None),
    ],
)
async def test_tax_rates_the_tax_rules_would_refuse_are_refused(
    admin_client: Admin, area: str, body: dict[str, Any], status: int, detail: str | None
) -> None:
    async with admin_client() as client:
        refused = await client.put(f"{API}/tax-rates/{area}", json=body)
    assert refused.status_code == status, refused.text
    if detail is None:  # the path's own shape: FastAPI's field error
        assert refused.json()["detail"][0]["loc"] == ["path", "area"]
    else:
        assert detail in refused.json()["detail"]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis-protocol server for the cart cache the admin API invalidates."""
    with redis_server() as url:
        yield url


async def test_each_committed_change_and_only_that_makes_every_cached_total_stale(
    admin_client: Admin, made: dict[str, list[str]], redis_url: str
) -> None:
    promotion_id, code = new_promotion(made)
    method_id, area = new_method(made), new_area(made)
    # Method, path, body; the answer's status, and how often the rules generation moves.
    requests: list[tuple[str, str, dict[str, Any] | None, int, int]] = [
        ("PUT", f"/promotions/{promotion_id}", promotion_body(code), 200, 1),
        ("PUT", f"/promotions/{promotion_id}", promotion_body(code, value="0"), 422, 0),
        ("GET", f"/promotions/{promotion_id}", None, 200, 0),
        ("POST", f"/promotions/{promotion_id}/deactivate", None, 200, 1),
        ("POST", "/promotions/no-such-promotion/deactivate", None, 404, 0),
        ("PUT", f"/shipping-methods/{method_id}", method_body(), 200, 1),
        ("POST", f"/shipping-methods/{method_id}/deactivate", None, 200, 1),
        ("PUT", f"/tax-rates/{area}", {"standard": "0.2"}, 200, 1),
        ("DELETE", f"/tax-rates/{area}", None, 204, 1),
        ("DELETE", f"/tax-rates/{area}", None, 404, 0),
    ]
    cart = CartApiSettings(cache_url=SecretStr(redis_url), cache_timeout_s=2.0)
    redis = Redis.from_url(redis_url)
    try:
        async with admin_client(cart=cart) as client:
            for method, path, body, status, bumps in requests:
                before = int(await redis.get(RULES_KEY) or 0)
                answer = await client.request(method, f"{API}{path}", json=body)
                assert answer.status_code == status, (method, path, answer.text)
                assert int(await redis.get(RULES_KEY) or 0) - before == bumps, (method, path)
    finally:
        await redis.aclose()


async def test_the_logs_show_codes_only_masked(
    admin_client: Admin, made: dict[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    promotion_id, code = new_promotion(made)
    with caplog.at_level(logging.DEBUG):
        async with admin_client() as client:
            await client.put(f"{API}/promotions/{promotion_id}", json=promotion_body(code))
            await client.put(f"{API}/promotions/{promotion_id}", json=promotion_body(code, value=0))
            await client.post(f"{API}/promotions/{promotion_id}/deactivate")
    assert f"promotion {promotion_id} stored, code CO****" in caplog.text
    assert code.upper() not in caplog.text.upper()


async def test_every_pricing_path_is_guarded_and_documented(admin_client: Admin) -> None:
    async with admin_client() as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert {
        f"{API}/promotions",
        f"{API}/promotions/{{promotion_id}}",
        f"{API}/promotions/{{promotion_id}}/deactivate",
        f"{API}/shipping-methods",
        f"{API}/shipping-methods/{{method_id}}",
        f"{API}/shipping-methods/{{method_id}}/deactivate",
        f"{API}/tax-rates",
        f"{API}/tax-rates/{{area}}",
    } <= set(paths)
    put = paths[f"{API}/promotions/{{promotion_id}}"]["put"]["responses"]
    assert {"200", "400", "401", "409", "422"} <= set(put)
    assert "404" in paths[f"{API}/tax-rates/{{area}}"]["delete"]["responses"]
