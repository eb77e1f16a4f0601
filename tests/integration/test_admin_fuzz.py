"""Schema-driven fuzzing of the admin API: every operation of its own OpenAPI document.

schemathesis generates requests from `/openapi.json`: valid ones, invalid ones, and valid ones
with the token left out or corrupted. httpx sends them in-process, through its ASGI transport, to
an admin app on the live test stack's database. Hypothesis runs in a worker thread and hands each
request to the session's event loop, where the app, its engine and the stack's services live.

Invalid input must be answered 4xx with a reason, reach no write statement, and leave the rows it
aimed at (a product, a saga, an order, dead letters seeded here) exactly as they were. Writes to
the pricing rules are aimed at rules of the test's own (deleted afterwards): the rules are the
whole shop's, and a random tax rate for "DE" would change every other test's totals.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
import requests
import schemathesis
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import APIOperation, BaseSchema, Case, CheckFunction, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import event
from sqlalchemy.engine import Connection

from contracts import CheckoutStarted
from contracts.topics import topic_for
from ops.admin.app import OPEN_PREFIX, create_admin_app
from services.platform.db import create_engine
from services.platform.settings import AdminSettings
from tests.support.builders import checkout_started
from tests.support.payer import ScriptedPayer, eventually, publish
from tests.support.stack import Stack

pytestmark = [
    pytest.mark.integration,
    # schemathesis' own strategies draw from `random`; hypothesis warns about it, not us.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

T = TypeVar("T")

TOKEN = "fuzz-admin-token"
GOOD_AUTH = f"Bearer {TOKEN}"
AUTH = {"Authorization": GOOD_AUTH}
SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What a SKU is (contracts.types.Sku), written again here as the test's own oracle."""
BASE_URL = "http://admin"
STOCK_PATH = "/admin/v1/stock/"
PUT_STOCK = f"PUT {STOCK_PATH}{{sku}}"
RULE_PARAMETERS = ("promotion_id", "method_id", "area")
"""Path parameters naming a pricing rule: every request naming one names the test's own."""
EXAMPLES = 25
"""Most requests drawn per strategy (each operation and mode has one); cheap on a busy CI."""
SEED_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written to .hypothesis/ (a failure prints its reproduction)
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
RESPONSE_CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
READS = ("SELECT", "SHOW")
"""Statements that change nothing; anything else the admin engine runs is a write."""


@dataclass
class Seeded:
    """Rows the fuzzing aims at: they must come out of it unchanged."""

    sku: str
    order_id: uuid.UUID
    dead_letter_key: str


@dataclass
class Fuzzer:
    """An admin app with a token on the stack's database, driven from a hypothesis thread."""

    client: httpx.AsyncClient
    schema: BaseSchema
    loop: asyncio.AbstractEventLoop
    writes: list[str] = field(default_factory=list)
    """Write statements the app's engine ran for the request in flight."""
    refused_skus: set[str] = field(default_factory=set)
    """Products that a refused PUT named (they must be untouched)."""
    accepted_skus: set[str] = field(default_factory=set)
    sent: int = 0

    def send(self, case: Case, authorization: str | None = GOOD_AUTH) -> httpx.Response:
        """Send one generated request (with this Authorization, or none) and wait for the answer."""
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        kwargs["headers"].pop("Authorization", None)
        if authorization is not None:
            kwargs["headers"]["Authorization"] = authorization
        prepared = requests.Request(**kwargs).prepare()
        request = self.client.build_request(
            str(prepared.method),
            str(prepared.url),
            headers=list(prepared.headers.items()),
            content=prepared.body,
        )
        response = self.exchange(request)
        if request.method == "PUT" and request.url.path.startswith(STOCK_PATH):
            sku = request.url.path.removeprefix(STOCK_PATH)
            (self.refused_skus if response.is_error else self.accepted_skus).add(sku)
        return response

    def exchange(self, request: httpx.Request) -> httpx.Response:
        """Send a request on the stack's loop; wait for the answer (in the hypothesis thread)."""
        self.writes.clear()
        self.sent += 1
        answer = asyncio.run_coroutine_threadsafe(self.client.send(request), self.loop)
        return answer.result(timeout=REQUEST_TIMEOUT_S)

    def operations(self) -> dict[str, APIOperation]:
        """Every operation of the document by label, e.g. "PUT /admin/v1/stock/{sku}"."""
        found = [result.ok() for result in self.schema.get_all_operations()]
        return {operation.label: operation for operation in found}


async def _seed(stack: Stack, producer: AIOKafkaProducer) -> Seeded:
    """A product, a confirmed checkout (saga and order) and a dead letter, each of this test."""
    sku = f"FUZZ-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, 50)
    start = checkout_started(items=[(sku, 1, "1.25")], buyer_id="buyer-fuzz")
    await publish(producer, start)
    key = str(uuid.uuid4())
    await producer.send_and_wait(topic_for(CheckoutStarted), b"\xff not json", key=key.encode())

    async def settled() -> bool:
        sql = "SELECT 1 FROM orders.orders WHERE order_id = :o AND status = 'confirmed'"
        confirmed = bool(await stack.rows(sql, o=start.order_id))
        deducted = (await stack.stock(sku))["deducted"] == 1
        letters = await _dead_letters(stack, key)
        return confirmed and deducted and len(letters) == 2 and all(r["sent_at"] for r in letters)

    await eventually(settled, timeout=SEED_TIMEOUT_S)
    return Seeded(sku=sku, order_id=start.order_id, dead_letter_key=key)


async def _dead_letters(stack: Stack, key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for schema in ("saga", "orders"):
        rows += await stack.sent(schema, "dead_letter", uuid.UUID(key))
    return rows


async def _snapshot(stack: Stack, seeded: Seeded, skus: Sequence[str] | None) -> dict[str, Any]:
    """The seeded rows and the named products (None: every product), as they are now."""
    products = await stack.rows("SELECT * FROM inventory.products ORDER BY sku")
    named = None if skus is None else {seeded.sku, *skus}
    return {
        "products": [row for row in products if named is None or row["sku"] in named],
        "saga": await stack.saga(seeded.order_id),
        "order": await stack.rows(
            "SELECT * FROM orders.orders WHERE order_id = :o", o=seeded.order_id
        ),
        "dead_letters": await _dead_letters(stack, seeded.dead_letter_key),
    }


def _record_writes(fuzzer: Fuzzer) -> Callable[..., None]:
    def record(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(READS):
            fuzzer.writes.append(statement)

    return record


@pytest.fixture
async def own_rules(stack: Stack) -> AsyncIterator[dict[str, str]]:
    """The pricing rules a test may write, by path parameter; deleted after it."""
    suffix = uuid.uuid4().hex[:10].upper()
    own = {"promotion_id": f"FUZZ-{suffix}", "method_id": f"FUZZ-{suffix}", "area": "ZZ-FZ"}
    yield own
    for table, column, parameter in (
        ("promotions", "promotion_id", "promotion_id"),
        ("promotion_uses", "promotion_id", "promotion_id"),
        ("shipping_methods", "method_id", "method_id"),
        ("tax_rates", "area", "area"),
    ):
        sql = f"DELETE FROM cart.{table} WHERE {column} = :value"
        await stack.rows_write(sql, value=own[parameter])


def _aimed(operation: APIOperation, own_rules: dict[str, str]) -> dict[str, Any]:
    """The operation's path parameters naming a pricing rule, fixed to the test's own rules."""
    named = {p.name for p in operation.iter_parameters() if p.location == "path"}
    fixed = {name: own_rules[name] for name in RULE_PARAMETERS if name in named}
    return {"path_parameters": fixed} if fixed else {}


@pytest.fixture(scope="module")
async def seeded(stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer) -> Seeded:
    """Rows of this module, settled before any request is generated."""
    return await _seed(stack, producer)


@pytest.fixture
async def fuzzer(stack: Stack) -> AsyncIterator[Fuzzer]:
    """An admin app with a token, its OpenAPI document loaded into schemathesis."""
    settings = stack.settings.model_copy(update={"admin": AdminSettings(token=SecretStr(TOKEN))})
    engine = create_engine(settings, pool_size=1)
    app = create_admin_app(settings, engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            document = await client.get("/openapi.json", headers=AUTH)
            schema = schemathesis.openapi.from_dict(document.json())
            # The token is this module's to send or to spoil, not a parameter to generate.
            schema.config.generation.update(with_security_parameters=False)
            found = Fuzzer(client, schema, asyncio.get_running_loop())
            event.listen(engine.sync_engine, "before_cursor_execute", _record_writes(found))
            yield found
    finally:
        await app.state.admin.cart_cache.close()
        await app.state.admin.telemetry.close()
        await engine.dispose()


def _drive(strategies: Sequence[st.SearchStrategy[T]], test: Callable[[T], None]) -> None:
    """Run `test` on up to EXAMPLES values of each strategy in turn (blocking: in a thread)."""
    for strategy in strategies:

        @FUZZ
        @given(drawn=strategy)
        def run(drawn: T) -> None:
            test(drawn)

        run()


async def _fuzz(strategies: Sequence[st.SearchStrategy[T]], test: Callable[[T], None]) -> None:
    """Hypothesis in a worker thread; the requests it sends run on this (the stack's) loop."""
    await asyncio.to_thread(_drive, strategies, test)


def _valid(
    fuzzer: Fuzzer, seeded: Seeded, own_sku: str, own_rules: dict[str, str]
) -> list[st.SearchStrategy[Case]]:
    """Every read, generated and aimed at the seeded rows; writes only to rows of its own."""
    operations = fuzzer.operations()
    at_order = {"path_parameters": {"order_id": str(seeded.order_id)}}
    aimed: list[tuple[str, dict[str, Any]]] = [
        ("GET /admin/v1/sagas/{order_id}", at_order),
        ("GET /admin/v1/orders/{order_id}", at_order),
        ("GET /admin/v1/stock", {"query": {"sku": [seeded.sku]}}),
        ("GET /admin/v1/dead-letters", {"query": {"schema": "orders"}}),
        (PUT_STOCK, {"path_parameters": {"sku": own_sku}}),
    ]
    reads = [
        op.as_strategy(**_aimed(op, own_rules))
        for label, op in operations.items()
        if label != PUT_STOCK
    ]
    return reads + [operations[label].as_strategy(**fixed) for label, fixed in aimed]


def _invalid(
    fuzzer: Fuzzer, seeded: Seeded, own_rules: dict[str, str]
) -> list[st.SearchStrategy[Case]]:
    """Invalid input for each operation that takes any, and invalid stock for the seeded product."""
    operations = fuzzer.operations()
    taking = [op for op in operations.values() if list(op.iter_parameters()) or op.body]
    at_seeded = {"sku": seeded.sku}
    put = operations[PUT_STOCK].as_strategy(GenerationMode.NEGATIVE, path_parameters=at_seeded)
    negative = GenerationMode.NEGATIVE
    return [op.as_strategy(negative, **_aimed_if_more(op, own_rules)) for op in taking] + [put]


def _aimed_if_more(operation: APIOperation, own_rules: dict[str, str]) -> dict[str, Any]:
    """Aimed at the test's own rules when something else is left to spoil (a body, a query).

    An operation whose only input is the rule's id (a deactivation, a deletion) gets a spoiled
    id, which is refused, so it names no rule at all.
    """
    aimed = _aimed(operation, own_rules)
    fixed = aimed.get("path_parameters", {})
    others = [p for p in operation.iter_parameters() if p.name not in fixed]
    return aimed if operation.body or others else {}


async def test_valid_requests_get_documented_answers(
    seeded: Seeded, fuzzer: Fuzzer, own_rules: dict[str, str]
) -> None:
    own_sku = f"FUZZ-{uuid.uuid4().hex[:10]}"

    def check(case: Case) -> None:
        response = fuzzer.send(case)
        case.validate_response(response, checks=RESPONSE_CHECKS)
        if case.operation.label == PUT_STOCK:  # the write detector sees writes
            assert response.status_code == 200, response.text
            assert fuzzer.writes, "no write statement seen for a stock change"
        elif response.status_code == 422:  # a well-formed rule the pricing rules refuse
            assert response.json()["detail"], response.text
            assert fuzzer.writes == [], fuzzer.writes

    strategies = _valid(fuzzer, seeded, own_sku, own_rules)
    await _fuzz(strategies, check)
    assert fuzzer.accepted_skus == {own_sku}
    print(f"\nvalid input: {fuzzer.sent} requests from {len(strategies)} strategies")


async def test_invalid_input_is_refused_with_a_reason_and_changes_nothing(
    stack: Stack, seeded: Seeded, fuzzer: Fuzzer, own_rules: dict[str, str]
) -> None:
    """Whatever is refused wrote nothing. Some "invalid" input is valid once serialized (an
    unknown query parameter, say), and schemathesis lets the API accept that; not stock, though."""
    before = await _snapshot(stack, seeded, None)

    def check(case: Case) -> None:
        response = fuzzer.send(case)
        # schemathesis judges an array-of-strings query by the generated values, not the text
        # sent (false goes out as "false", a fine SKU): the SKU filter has a property of its own.
        judged = case.operation.label != "GET /admin/v1/stock"
        checks = [*RESPONSE_CHECKS, negative_data_rejection] if judged else RESPONSE_CHECKS
        case.validate_response(response, checks=checks)
        if response.is_error:
            assert response.json()["detail"], response.text
            assert fuzzer.writes == [], fuzzer.writes

    strategies = _invalid(fuzzer, seeded, own_rules)
    await _fuzz(strategies, check)
    assert seeded.sku in fuzzer.refused_skus
    assert fuzzer.accepted_skus == set(), "an invalid stock change was taken"
    addressed = {seeded.sku, *fuzzer.refused_skus}
    before["products"] = [row for row in before["products"] if row["sku"] in addressed]
    assert await _snapshot(stack, seeded, sorted(addressed)) == before
    print(f"\ninvalid input: {fuzzer.sent} requests from {len(strategies)} strategies")


async def test_sku_filters_are_refused_unless_each_is_a_sku(fuzzer: Fuzzer) -> None:
    def check(skus: list[str]) -> None:
        query = {"sku": skus}
        request = fuzzer.client.build_request("GET", "/admin/v1/stock", params=query, headers=AUTH)
        response = fuzzer.exchange(request)
        valid = all(SKU.fullmatch(sku) for sku in skus)
        assert response.status_code == (200 if valid else 422), (skus, response.text)

    text = st.text(st.characters(codec="utf-8"), max_size=70)
    skus = st.lists(text | st.from_regex(SKU, fullmatch=True), min_size=1, max_size=4)
    await _fuzz([skus], check)
    print(f"\nSKU filters: {fuzzer.sent} requests")


def _bad_authorization() -> st.SearchStrategy[str | None]:
    """No Authorization header, or a value that is not the token's (trimmed, as servers do)."""
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
    near = st.sampled_from([TOKEN, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}"])
    values = st.one_of(near, printable, printable.map("Bearer {}".format)).map(str.strip)
    return st.none() | values.filter(lambda value: value not in ("", GOOD_AUTH))


async def test_without_the_token_everything_but_health_is_refused(fuzzer: Fuzzer) -> None:
    def refused(drawn: tuple[Case, str | None]) -> None:
        case, authorization = drawn
        response = fuzzer.send(case, authorization)
        assert response.status_code == 401, (authorization, response.text)
        case.validate_response(response, checks=RESPONSE_CHECKS)
        assert fuzzer.writes == [], fuzzer.writes

    def open_to_all(case: Case) -> None:
        response = fuzzer.send(case, authorization=None)
        assert response.status_code != 401, response.text
        case.validate_response(response, checks=RESPONSE_CHECKS)

    operations = fuzzer.operations().values()
    guarded = [op for op in operations if not op.path.startswith(OPEN_PREFIX)]
    await _fuzz([st.tuples(op.as_strategy(), _bad_authorization()) for op in guarded], refused)
    health = [op.as_strategy() for op in operations if op.path.startswith(OPEN_PREFIX)]
    await _fuzz(health, open_to_all)
    assert len(guarded) + len(health) == len(operations)
    print(f"\nno or wrong token: {fuzzer.sent} requests over {len(operations)} operations")
