"""The metrics: client-go's and controller-runtime's work-queue, reconcile and request series,
the gauges read at scrape time, the buckets, and no ``*_created`` series."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest

from orderflow.runtime import metrics
from orderflow.runtime.retry import RetryPolicy
from orderflow.runtime.workqueue import WorkQueue


def value(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def unique() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"  # each test its own label value: the registry is per process


@pytest.mark.asyncio
@pytest.mark.looptime  # a fake loop clock: the durations below are exact, and "idle" means nothing is left to run
async def test_work_queue_and_reconcile_metrics_count_as_client_go_and_controller_runtime_do() -> None:
    name = unique()
    calls: dict[str, int] = {}
    release = asyncio.Event()
    seen: dict[str, float | None] = {}

    async def reconcile(key: str) -> float | None:
        calls[key] = calls.get(key, 0) + 1
        if key == "fails" and calls[key] == 1:
            raise RuntimeError("boom")
        if key == "slow":
            await release.wait()
        return 60.0 if key == "again" else None

    queue: WorkQueue[str] = WorkQueue(name, reconcile, workers=2, retry=RetryPolicy(initial_interval=1))
    queue.start()
    queue.add("slow")  # runs at 0 s and waits for the release
    await asyncio.sleep(1)
    queue.add("slow")  # while it runs: waits for it, counted in the depth
    queue.add("slow")  # folded into the add before: neither an add nor depth
    await asyncio.sleep(2.5)
    seen["depth"] = value("workqueue_depth", controller=name, name=name)
    seen["active"] = value("controller_runtime_active_workers", controller=name)
    seen["longest"] = value("workqueue_longest_running_processor_seconds", controller=name, name=name)
    seen["unfinished"] = value("workqueue_unfinished_work_seconds", controller=name, name=name)
    seen["max"] = value("controller_runtime_max_concurrent_reconciles", controller=name)
    release.set()  # at 3.5 s: the second "slow" runs at once, after 2.5 s in the queue
    for key in ("fails", "again"):
        queue.add(key)  # "fails" is retried 1 s later; "again" asks for a look in 60 s
    await asyncio.sleep(10)
    seen["idle depth"] = value("workqueue_depth", controller=name, name=name)
    await queue.stop()
    seen["after stop"] = value("workqueue_depth", controller=name, name=name)

    assert seen["depth"] == 1
    assert seen["active"] == 1
    assert seen["longest"] == 3.5
    assert seen["unfinished"] == 3.5  # one running: the same
    assert seen["max"] == 2
    assert seen["idle depth"] == 0
    assert seen["after stop"] is None  # a stopped queue is not reported
    assert calls == {"slow": 2, "fails": 2, "again": 1}
    # Time: only the first "slow" ran for a while (3.5 s); only the second one waited (2.5 s).
    assert value("workqueue_work_duration_seconds_sum", controller=name, name=name) == 3.5
    assert value("controller_runtime_reconcile_time_seconds_sum", controller=name) == 3.5
    assert value("workqueue_queue_duration_seconds_sum", controller=name, name=name) == 2.5
    # slow twice, fails twice (the second one is the retry), again once
    assert value("workqueue_adds_total", controller=name, name=name) == 5
    assert value("workqueue_retries_total", controller=name, name=name) == 1
    assert value("workqueue_queue_duration_seconds_count", controller=name, name=name) == 5
    assert value("workqueue_work_duration_seconds_count", controller=name, name=name) == 5
    assert value("controller_runtime_reconcile_total", controller=name, result="success") == 3
    assert value("controller_runtime_reconcile_total", controller=name, result="error") == 1
    assert value("controller_runtime_reconcile_total", controller=name, result="requeue_after") == 1
    assert value("controller_runtime_reconcile_time_seconds_count", controller=name) == 5
    assert value("orderflow_reconcile_errors_total", controller=name) == 1  # the alerts' series, kept
    assert value("controller_runtime_reconcile_errors_total", controller=name) == 1


def test_a_new_controllers_counters_read_zero_before_anything_happens() -> None:
    name = unique()
    WorkQueue(name, lambda key: None)  # type: ignore[arg-type, return-value]
    for result in ("success", "error", "requeue", "requeue_after"):
        assert value("controller_runtime_reconcile_total", controller=name, result=result) == 0
    for counter in ("controller_runtime_reconcile_errors_total", "orderflow_reconcile_errors_total",
                    "orderflow_write_conflicts_total", "orderflow_retries_exhausted_total"):  # fmt: skip
        assert value(counter, controller=name) == 0, counter
    assert value("workqueue_adds_total", controller=name, name=name) == 0
    assert value("workqueue_retries_total", controller=name, name=name) == 0


def test_unacknowledged_signals_are_orders_whose_ack_timed_out() -> None:
    controller = unique()

    def order(reason: str | None) -> dict[str, Any]:
        conditions = [{"type": "Ready", "status": "False", "reason": "NotAcknowledged"}]  # another type: not counted
        if reason:
            conditions.append({"type": "SignalsAcknowledged", "status": "False", "reason": reason})
        return {"status": {"conditions": conditions}}

    orders = [order("NotAcknowledged"), order("Waiting"), order(None), {}, order("NotAcknowledged")]
    metrics.count_unacknowledged(controller, lambda: map(metrics.is_unacknowledged, orders))
    assert value("orderflow_unacknowledged_signals", controller=controller) == 2
    orders.clear()
    assert value("orderflow_unacknowledged_signals", controller=controller) == 0  # 0, not absent


def test_phases_are_counted_at_scrape_time_and_the_latest_registration_wins() -> None:
    controller = unique()
    metrics.count_phases(controller, "Order", lambda: map(metrics.phase_of, [{"status": {"phase": "Fulfilling"}}, {}]))
    metrics.count_phases(controller, "Order", lambda: map(metrics.phase_of, [{"status": {"phase": "Completed"}}]))
    assert value("orderflow_workflows", controller=controller, kind="Order", phase="Completed") == 1
    assert value("orderflow_workflows", controller=controller, kind="Order", phase="Fulfilling") is None


def test_step_durations_fall_in_buckets_up_to_a_day() -> None:
    controller = unique()
    for seconds in (0, 4, 7200, 86_400):
        metrics.STEP_SECONDS.labels(controller, "Picking").observe(seconds)

    def bucket(le: str) -> float | None:
        return value("orderflow_step_duration_seconds_bucket", controller=controller, step="Picking", le=le)

    assert bucket("0.1") == 1
    assert bucket("5.0") == 2
    assert bucket("14400.0") == 3
    assert bucket("86400.0") == 4  # the longest step allowed is not left to +Inf
    assert metrics.STEP_BUCKETS[-1] == 86_400


def test_no_created_series_are_exported() -> None:
    metrics.TRANSITIONS.labels(unique(), "Shipped").inc()
    exported = generate_latest(REGISTRY).decode()
    assert "orderflow_transitions_total" in exported
    assert "_created" not in exported


ROOT = Path(__file__).resolve().parents[3]
OURS = re.compile(r"\b((?:orderflow|workqueue|controller_runtime|rest_client)_[a-z_]+)\b")


def exported() -> set[str]:
    """The metric families this package registers, by their exposed names."""
    names = set()
    for family in REGISTRY.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        if OURS.fullmatch(name):
            names.add(name)
    return names


def test_the_docs_list_every_metric_and_no_other() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    section = deploy.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    assert documented == exported()


def test_the_dashboard_reads_only_exported_metrics_and_shows_the_main_ones() -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    read = {re.sub(r"_(bucket|count|sum)$", "", m) for q in queries for m in OURS.findall(q)}
    assert read <= exported(), read - exported()
    assert {
        "orderflow_transitions_total",
        "orderflow_workflows",
        "orderflow_step_duration_seconds",
        "controller_runtime_reconcile_total",
        "workqueue_depth",
        "orderflow_signal_ack_seconds",
        "rest_client_requests_total",
    } <= read
