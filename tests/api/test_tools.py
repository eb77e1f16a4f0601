"""The operator's tools around the API: `checkout-saga catalog` and `serve_http`."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from typer.testing import CliRunner

from ops.cli.catalog import catalog_cli
from services.cart.http.app import serve_http
from services.platform.settings import CartApiSettings, Settings
from tests.api import new_sku


def test_catalog_set_and_list(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKOUT_DATABASE_URL", migrated_url)
    runner, sku = CliRunner(), new_sku()

    created = runner.invoke(catalog_cli, ["set", sku, "--price", "9.90", "--max-qty", "5"])
    changed = runner.invoke(
        catalog_cli, ["set", sku, "--price", "12.00", "--currency", "USD", "--inactive"]
    )
    listed = runner.invoke(catalog_cli, ["list"])

    assert (created.exit_code, changed.exit_code, listed.exit_code) == (0, 0, 0), created.output
    assert "9.90 EUR  yes       5" in created.output
    [line] = [ln for ln in listed.output.splitlines() if ln.startswith(sku)]
    assert line.split()[1:5] == ["12.00", "USD", "no", "20"]
    assert created.output.split()[-1] != line.split()[-1]  # new terms, new offer id


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["set", "bad sku!", "--price", "1"], "SKU"),
        (["set", "SKU-1", "--price", "1.001"], "--price"),
        (["set", "SKU-1", "--price", "0"], "--price"),
        (["set", "SKU-1", "--price", "1", "--currency", "euro"], "--currency"),
        (["set", "SKU-1", "--price", "1", "--max-qty", "21"], "--max-qty"),
    ],
)
def test_catalog_set_refuses_bad_input(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(catalog_cli, args)
    assert result.exit_code == 2
    assert complaint in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_serve_http_answers_until_stopped(handler_settings: Settings) -> None:
    port = _free_port()
    settings = handler_settings.model_copy(update={"cart": CartApiSettings(http_port=port)})
    stop = asyncio.Event()

    server = asyncio.create_task(serve_http(settings, stop))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(200):
            try:
                response = await http.get("/api/v1/cart", headers={"X-Buyer-Id": "nobody"})
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(server, timeout=10)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_serve_http_next_to_services_reports_a_taken_port_instead_of_exiting(
    handler_settings: Settings,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = handler_settings.model_copy(update={"cart": CartApiSettings(http_port=port)})
        # uvicorn raises SystemExit on a port it cannot bind: inside `dev` that ended every service.
        served = await asyncio.wait_for(serve_http(settings, asyncio.Event()), timeout=10)
    assert served is False
