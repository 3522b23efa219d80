"""Prometheus metrics, served by each controller on a port of its own (prometheus-client).

Both controllers use the same metric names with a ``controller`` label (``name`` on the work-queue
metrics), so one dashboard serves both; each process has its own registry (the default one) and
its own endpoint. The work queue, reconcile and API-request metrics carry client-go's and
controller-runtime's names and labels, so dashboards and alerts written for Go controllers read
these too. docs/deploy.md ("Logs and metrics") lists every series.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# prometheus-client adds a `<name>_created` series to every counter and histogram: one more
# series per child that no dashboard or alert reads, and that Go controllers do not export.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# A step may last from 0 to 86,400 s (spec.stepDurationSeconds): buckets from sub-second (tests,
# demos) to a day, so a histogram_quantile over real step times is not stuck in +Inf.
STEP_BUCKETS = (0.1, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
# client-go's workqueue buckets (10 ns to 1000 s, times 10): queue waits and reconciles range
# from microseconds (an idle queue) to minutes (a backlog after a restart).
_QUEUE_BUCKETS = tuple(float(f"1e{exponent}") for exponent in range(-8, 4))  # exact powers of ten: clean `le`s

# -- the workflows ------------------------------------------------------------------------------

RECONCILE_ERRORS = Counter(
    "orderflow_reconcile_errors_total",
    "Reconciles that raised and were retried (the same count as controller_runtime_reconcile_total"
    '{result="error"}; the alerts read this one).',
    ["controller"],
)
CONFLICTS = Counter(
    "orderflow_write_conflicts_total", "Writes refused with 409 (stale resourceVersion).", ["controller"]
)
TRANSITIONS = Counter(
    "orderflow_transitions_total",
    "Workflow transitions written, by reason: the fulfillment controller's history reasons (Started, Picked, "
    "Shipped, Paused, ...), the order controller's new phase (Fulfilling, Completed, ...).",
    ["controller", "reason"],
)
STEP_SECONDS = Histogram(
    "orderflow_step_duration_seconds",
    "How long each fulfillment step ran.",
    ["controller", "step"],
    buckets=STEP_BUCKETS,
)
DEADLINES_MISSED = Counter(
    "orderflow_deadlines_missed_total",
    "Workflows found past spec.activeDeadlineSeconds before they finished, by kind: a Fulfillment "
    "failed DeadlineExceeded, an Order whose Fulfillment was cancelled for it.",
    ["controller", "kind"],
)
DEADLINE_LATENESS_SECONDS = Histogram(
    "orderflow_deadline_lateness_seconds",
    "How long after its due time a missed deadline was acted on.",
    ["controller", "kind"],
    buckets=_LATENCY_BUCKETS,
)
TARGET_REACHABLE = Gauge(
    "orderflow_target_reachable",
    "Order controller: 1 while its list and watch of a target's Fulfillments works, 0 while the target is down.",
    ["controller", "target"],
)
TARGET_WATCH_RESTARTS = Counter(
    "orderflow_target_watch_restarts_total",
    "Order controller: times the list and watch of a target's Fulfillments failed and started again.",
    ["controller", "target"],
)
EVENTS_DROPPED = Counter(
    "orderflow_events_dropped_total",
    "Events not posted: rate-limited (the object had its burst of Events, then one per 5 minutes, as "
    "client-go's recorder allows) or backlog (too many posts waiting for the API server).",
    ["controller", "reason"],
)
SIGNAL_ACK_SECONDS = Histogram(
    "orderflow_signal_ack_seconds",
    "Time from sending a signal to the Fulfillment acknowledging it (observedGeneration).",
    ["controller"],
    buckets=_LATENCY_BUCKETS,
)

# -- the work queue and reconciles: client-go's and controller-runtime's names ----------------------

# `controller` and `name` both, as controller-runtime labels its workqueue series (client-go's have
# `name` only): dashboards written for either select these.
WORKQUEUE_ADDS = Counter("workqueue_adds_total", "Total number of adds handled by workqueue.", ["controller", "name"])
WORKQUEUE_RETRIES = Counter(
    "workqueue_retries_total", "Total number of retries handled by workqueue.", ["controller", "name"]
)
RETRIES_EXHAUSTED = Counter(
    "orderflow_retries_exhausted_total",
    "Objects whose reconcile failed as many times in a row as the retry policy allows: each is marked "
    "Stalled and waits for a change to its spec.",
    ["controller"],
)
WORKQUEUE_QUEUE_SECONDS = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested.",
    ["controller", "name"],
    buckets=_QUEUE_BUCKETS,
)
WORKQUEUE_WORK_SECONDS = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes.",
    ["controller", "name"],
    buckets=_QUEUE_BUCKETS,
)
RECONCILES = Counter(
    "controller_runtime_reconcile_total",
    "Total number of reconciliations per controller, by result: success, error, requeue, requeue_after.",
    ["controller", "result"],
)
RECONCILE_ERRORS_CR = Counter(
    "controller_runtime_reconcile_errors_total",
    "Total number of reconciliation errors per controller.",
    ["controller"],
)
RECONCILE_SECONDS = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller.",
    ["controller"],
    buckets=_LATENCY_BUCKETS,
)

# -- API requests made through orderflow.runtime.client (Kopf's own watches and lists are not counted) ---------

REST_REQUESTS = Counter(
    "rest_client_requests_total",
    'Number of HTTP requests, partitioned by status code, method, and host (code "<error>": no response).',
    ["code", "method", "host"],
)
REST_SECONDS = Histogram(
    "rest_client_request_duration_seconds",
    "Request latency in seconds. Broken down by verb and host.",
    ["verb", "host"],
    buckets=_LATENCY_BUCKETS,
)

# -- gauges computed at scrape time ------------------------------------------------------------

_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "orderflow_workflows": ("Objects known to the controller, by phase.", ("controller", "kind", "phase")),
    "orderflow_unacknowledged_signals": (
        "Orders whose last signal their Fulfillment has not acknowledged within the ack timeout "
        "(condition SignalsAcknowledged, reason NotAcknowledged).",
        ("controller",),
    ),
    "workqueue_depth": ("Current depth of workqueue.", ("controller", "name")),
    "workqueue_unfinished_work_seconds": (
        "How many seconds of work has been done that is in progress and hasn't been observed by "
        "work_duration. Large values indicate stuck threads.",
        ("controller", "name"),
    ),
    "workqueue_longest_running_processor_seconds": (
        "How many seconds has the longest running processor for workqueue been running.",
        ("controller", "name"),
    ),
    "controller_runtime_active_workers": ("Number of currently used workers per controller.", ("controller",)),
    "controller_runtime_max_concurrent_reconciles": (
        "Maximum number of concurrent reconciles per controller.",
        ("controller",),
    ),
}

Reading = tuple[str, Sequence[str], float]
"""One gauge sample: metric name (a key of _GAUGES), its label values, the value."""


class _ScrapeTimeGauges(Collector):
    """Gauges read from the controller's own state (its store, its work queue) at scrape time, so
    they are exact at every scrape and cost nothing between scrapes. One collector for all, so
    two controllers in one process (the unit tests) share each metric family instead of
    registering it twice."""

    def __init__(self) -> None:
        self.sources: dict[Hashable, Callable[[], Iterable[Reading]]] = {}

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, (documentation, labels) in _GAUGES.items():
            yield GaugeMetricFamily(name, documentation, labels=list(labels))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            name: GaugeMetricFamily(name, documentation, labels=list(labels))
            for name, (documentation, labels) in _GAUGES.items()
        }
        for source in list(self.sources.values()):
            for name, labels, value in source():
                families[name].add_metric(list(labels), value)
        yield from families.values()


_gauges = _ScrapeTimeGauges()
REGISTRY.register(_gauges)


def phase_of(body: dict[str, Any]) -> str:
    """What ``orderflow_workflows`` counts an object as: its status phase, Pending before it has one."""
    return str((body.get("status") or {}).get("phase") or "Pending")


def is_unacknowledged(order: dict[str, Any]) -> bool:
    """What ``orderflow_unacknowledged_signals`` counts: an Order whose SignalsAcknowledged
    condition has the reason NotAcknowledged (the ack timeout passed)."""
    return _condition_reason(order, "SignalsAcknowledged") == "NotAcknowledged"


def count_phases(controller: str, kind: str, phases: Callable[[], Iterable[str]]) -> None:
    """``orderflow_workflows``: how many of ``phases()`` are each phase, at scrape time (the latest
    registration for a controller and kind wins). ``phases()`` reads the controller's cache, one
    ``phase_of`` per object, kept beside it: a scrape decodes no object."""

    def readings() -> Iterator[Reading]:
        for phase, count in sorted(Tally(phases()).items()):
            yield "orderflow_workflows", (controller, kind, phase), count

    _gauges.sources[("workflows", controller, kind)] = readings


def count_unacknowledged(controller: str, flags: Callable[[], Iterable[bool]]) -> None:
    """``orderflow_unacknowledged_signals``: how many of ``flags()`` (``is_unacknowledged`` of each
    Order) are true, at scrape time; always a sample, 0 included, so an alert tells "none" from
    "not scraped"."""

    def readings() -> Iterator[Reading]:
        yield "orderflow_unacknowledged_signals", (controller,), sum(1 for flag in flags() if flag)

    _gauges.sources[("unacknowledged", controller)] = readings


def _condition_reason(body: dict[str, Any], type_: str) -> str | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == type_:
            reason = condition.get("reason")
            return str(reason) if reason is not None else None
    return None


class QueueState(Protocol):
    """What the work-queue gauges read from a queue (orderflow.runtime.workqueue.WorkQueue)."""

    @property
    def name(self) -> str: ...

    @property
    def workers(self) -> int: ...

    def depth(self) -> int: ...

    def running_for(self) -> list[float]:
        """How long each running reconcile has run so far, in seconds (on the queue's clock)."""
        ...


_tracked: dict[str, QueueState] = {}  # by name: the queue whose gauges are served


def track_queue(queue: QueueState) -> None:
    """Serve ``queue``'s depth, its running reconciles and its worker count until untracked."""

    def readings() -> Iterator[Reading]:
        running = queue.running_for()
        both = (queue.name, queue.name)  # controller, name
        yield "workqueue_depth", both, queue.depth()
        yield "workqueue_unfinished_work_seconds", both, sum(running)
        yield "workqueue_longest_running_processor_seconds", both, max(running, default=0.0)
        yield "controller_runtime_active_workers", (queue.name,), len(running)
        yield "controller_runtime_max_concurrent_reconciles", (queue.name,), queue.workers

    _gauges.sources[("queue", queue.name)] = readings
    _tracked[queue.name] = queue


RESULTS = ("success", "error", "requeue", "requeue_after")


def prime(controller: str) -> None:
    """Every counter a controller's alerts and dashboards read, at 0 from the start: a series with
    no sample shows "No data", and ``increase()`` misses its first event."""
    for result in RESULTS:
        RECONCILES.labels(controller, result)
    for counter in (RECONCILE_ERRORS, RECONCILE_ERRORS_CR, CONFLICTS, RETRIES_EXHAUSTED):
        counter.labels(controller)
    for counter in (WORKQUEUE_ADDS, WORKQUEUE_RETRIES):
        counter.labels(controller, controller)


def untrack_queue(queue: QueueState) -> None:
    """Stop serving ``queue``'s gauges, unless a newer queue of the same name has taken over."""
    if _tracked.get(queue.name) is queue:
        del _tracked[queue.name]
        _gauges.sources.pop(("queue", queue.name), None)


DEFAULT_BIND_ADDRESS = "127.0.0.1"
"""Only this machine, unless asked: metrics name namespaces and object counts, which not everyone
who can reach a node or a Pod network should read. The charts bind 0.0.0.0 for the Service."""


def serve(port: int, address: str = DEFAULT_BIND_ADDRESS) -> None:
    if port:
        start_http_server(port, addr=address)
