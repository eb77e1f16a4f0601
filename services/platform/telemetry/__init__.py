"""Metrics, structured logs and traces; a `Telemetry` is made once per process and passed in.

Imports no service and not the saga. Nothing here registers anything at import time.
"""

from services.platform.telemetry.core import Probe, Telemetry
from services.platform.telemetry.metrics import Metrics

__all__ = ["Metrics", "Probe", "Telemetry"]
