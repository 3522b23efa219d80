"""Prometheus metrics, served by each controller on a port of its own (prometheus-client).

Both controllers use the same metric names with a ``controller`` label, so one dashboard serves
both; each process has its own registry (the default one) and its own endpoint.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

RECONCILES = Counter("orderflow_reconciles_total", "Reconciles run.", ["controller"])
RECONCILE_ERRORS = Counter(
    "orderflow_reconcile_errors_total", "Reconciles that raised and were retried.", ["controller"]
)
CONFLICTS = Counter(
    "orderflow_write_conflicts_total", "Writes refused with 409 (stale resourceVersion).", ["controller"]
)
TRANSITIONS = Counter(
    "orderflow_transitions_total", "Workflow transitions and signals applied, by reason.", ["controller", "reason"]
)
STEP_SECONDS = Histogram(
    "orderflow_step_duration_seconds", "How long each fulfillment step ran.", ["controller", "step"]
)
SIGNAL_ACK_SECONDS = Histogram(
    "orderflow_signal_ack_seconds",
    "Time from sending a signal to the Fulfillment acknowledging it (observedGeneration).",
    ["controller"],
    buckets=_LATENCY_BUCKETS,
)


class PhaseCollector(Collector):
    """``orderflow_workflows{controller,kind,phase}``: counted from the controller's cache at scrape
    time, so it is always exact and costs nothing between scrapes."""

    def __init__(self, controller: str, kind: str, objects: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.controller, self.kind, self.objects = controller, kind, objects

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "orderflow_workflows", "Objects known to the controller, by phase.", labels=["controller", "kind", "phase"]
        )
        phases = Tally((obj.get("status") or {}).get("phase") or "Pending" for obj in self.objects())
        for phase, count in sorted(phases.items()):
            family.add_metric([self.controller, self.kind, phase], count)
        yield family


_phase_collectors: dict[tuple[str, str], PhaseCollector] = {}


def count_phases(controller: str, kind: str, objects: Callable[[], Iterable[dict[str, Any]]]) -> None:
    """Count the phases of ``objects()`` at scrape time (the latest registration wins)."""
    previous = _phase_collectors.pop((controller, kind), None)
    if previous is not None:
        REGISTRY.unregister(previous)
    collector = PhaseCollector(controller, kind, objects)
    REGISTRY.register(collector)
    _phase_collectors[(controller, kind)] = collector


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="0.0.0.0")  # in a Pod; the chart exposes the port
