"""Telemetry of one process: its metrics, its tracing, and the probes that refresh gauges."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from opentelemetry import trace

from services.platform.telemetry.metrics import Metrics
from services.platform.telemetry.tracing import Tracing

log = logging.getLogger("checkout_saga.telemetry")


class Probe(Protocol):
    """Sets gauges from an outside source (the database, the broker) when metrics are scraped."""

    async def __call__(self, metrics: Metrics) -> None:
        """Read the source and set the gauges."""

    async def close(self) -> None:
        """Release what the probe holds (clients, connections)."""


class Telemetry:
    """Created once per process and passed in: metrics registry, tracer, gauge probes."""

    def __init__(
        self, metrics: Metrics | None = None, tracer_provider: trace.TracerProvider | None = None
    ) -> None:
        self.metrics = metrics or Metrics()
        self.tracing = Tracing(tracer_provider)
        self._probes: dict[str, Probe] = {}

    def add_probe(self, name: str, probe: Probe) -> Probe | None:
        """Run probe on every refresh; returns the probe it replaced (the caller closes it)."""
        replaced = self._probes.get(name)
        self._probes[name] = probe
        return replaced

    async def remove_probe(self, name: str, probe: Probe | None = None) -> None:
        """Stop running a probe (only this one, when given) and close it."""
        current = self._probes.get(name)
        if current is None or (probe is not None and current is not probe):
            return
        del self._probes[name]
        await current.close()

    async def refresh(self, timeout_s: float = 3.0) -> None:
        """Run every probe at once, each within timeout_s; a failed one keeps its old values."""
        probes = list(self._probes.items())
        await asyncio.gather(*(self._run(name, probe, timeout_s) for name, probe in probes))

    async def _run(self, name: str, probe: Probe, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await probe(self.metrics)
        except Exception as exc:
            log.warning("metrics probe %s failed: %r", name, exc)
            self.metrics.refresh_failures.labels(name.partition(":")[0]).inc()

    async def scrape(self) -> bytes:
        """Refresh the gauges, then render every metric in the Prometheus text format."""
        await self.refresh()
        return self.metrics.render()

    async def close(self) -> None:
        """Close every probe."""
        probes, self._probes = list(self._probes.values()), {}
        for probe in probes:
            await probe.close()
