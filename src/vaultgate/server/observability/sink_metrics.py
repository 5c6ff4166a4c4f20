"""The audit sinks' delivery state as Prometheus gauges, read from the database when scraped.

The one label is the sink's name: chosen by the operator, few, and constrained to a tame
pattern (sinks/models.py), so it is a bounded label. No grant id or URL is ever one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vaultgate.server.sinks import outbox
from vaultgate.server.storage.engine import reading

if TYPE_CHECKING:
    from vaultgate.server.runtime import Runtime

_SERIES = (
    ("vaultgate_audit_sink_lag_events", "Audit events not yet delivered to the sink."),
    ("vaultgate_audit_sink_lag_seconds", "Age of the oldest event not yet delivered (0 if none)."),
    ("vaultgate_audit_sink_cursor", "The last audit seq the sink acknowledged."),
    ("vaultgate_audit_sink_failed_attempts", "Consecutive failed deliveries (0 once it succeeds)."),
    ("vaultgate_audit_sink_enabled", "1 when the sink is enabled, 0 when paused."),
)


class SinkCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def collect(self) -> Iterator[Metric]:
        families = [GaugeMetricFamily(name, text, labels=["sink"]) for name, text in _SERIES]
        now = self._rt.clock()
        sinks = self._rt.sinks.sinks()
        with reading(self._rt.engine) as conn:
            for sink in sinks:
                lag = outbox.lag(conn, sink.cursor, now)
                values = (lag.events, lag.seconds, sink.cursor, sink.attempts, int(sink.enabled))
                for family, value in zip(families, values, strict=True):
                    family.add_metric([sink.name], value)
        yield from families
