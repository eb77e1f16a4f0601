"""What the admin API's endpoints share: settings, engine, telemetry, the schemas, the cart cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from faststream.specification import AsyncAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart.cache import CartCache, NoCache
from services.platform.settings import Settings
from services.platform.telemetry import Telemetry

if TYPE_CHECKING:
    from services.runtime import Runtime


@dataclass
class AdminContext:
    """State of one admin app (the caller owns the engine and the runtime; the app the cache)."""

    settings: Settings
    engine: AsyncEngine
    telemetry: Telemetry
    schemas: Sequence[str]
    runtime: Runtime | None = None
    asyncapi: AsyncAPI | None = None
    cart_cache: CartCache = field(default_factory=NoCache)
    """Told when the pricing rules change (every cart's totals); whoever serves the app closes it."""
