"""The waiting benchmark's verdicts: each of #22's targets read from one size's results."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from orderflow.dev.bench.waiting import summarize_profile, targets


def _p(p99_ms: float) -> dict[str, float]:
    return {"n": 10, "p50_ms": 1, "p95_ms": 1, "p99_ms": p99_ms, "max_ms": p99_ms}


RESULT: dict[str, Any] = {
    "orderflow": {
        "orders": 10_000,
        "waiting": {
            "controllers_core_percent_per_10000_waiting": 0.05,
            "core_percent_per_10000_waiting": {"order": 0.03, "fulfillment": 0.02, "kube-apiserver": 1.0, "etcd": 0.5},
            "api_requests_per_waiting_per_minute": 0.0,
            "rss_mib": {"order": 90.0, "fulfillment": 80.0},
        },
        "restart": {"serving_seconds": 12.0, "writes_beyond_due_transitions": {}, "rss_mib_after": {"order": 95.0}},
        "lateness": {"all": _p(400), "due_before_serving_from_serving": _p(700)},
    },
    "peer": {"core_percent_per_10000_waiting": {"server": 900.0, "worker": 500.0}},
}


def verdicts(result: dict[str, Any]) -> list[bool]:
    return [ok for _, _, ok in targets(result)]


def test_all_reached() -> None:
    assert verdicts(RESULT) == [True] * 6


def test_lateness_during_the_restart_counts() -> None:
    late = copy.deepcopy(RESULT)
    late["orderflow"]["lateness"]["due_before_serving_from_serving"] = _p(1200)
    assert verdicts(late) == [True, True, False, True, True, True]


def test_a_write_beyond_the_due_transitions_misses_the_restart_target() -> None:
    wrote = copy.deepcopy(RESULT)
    wrote["orderflow"]["restart"]["writes_beyond_due_transitions"] = {"orders/status": 3}
    assert verdicts(wrote)[4] is False


def test_without_the_peer_there_is_no_comparison() -> None:
    alone = {"orderflow": RESULT["orderflow"]}
    assert len(targets(alone)) == 5


def test_a_profile_says_where_the_samples_went_on_the_stack_and_on_top(tmp_path: Path) -> None:
    """py-spy's collapsed stacks (one line a stack, its count last), summed per function."""
    raw = tmp_path / "fulfillment.txt"
    raw.write_text(
        "main (orderflow/cli.py:10);_work (/v/site-packages/../operator/orderflow/runtime/workqueue.py:5);"
        "decide (/v/operator/orderflow/fulfillment/workflow.py:7) 30\n"
        "main (orderflow/cli.py:10);_work (/v/site-packages/../operator/orderflow/runtime/workqueue.py:5) 10\n"
        "main (orderflow/cli.py:10);select (/usr/lib/python3.11/selectors.py:468) 60\n"
    )
    profile = summarize_profile(raw)
    assert profile["samples"] == 100
    inclusive = dict(profile["inclusive_percent"])
    assert inclusive["main (orderflow/cli.py:10)"] == 100.0
    assert inclusive["decide (orderflow/fulfillment/workflow.py:7)"] == 30.0
    assert dict(profile["self_percent"]) == {
        "select (/usr/lib/python3.11/selectors.py:468)": 60.0,
        "decide (orderflow/fulfillment/workflow.py:7)": 30.0,
        "_work (orderflow/runtime/workqueue.py:5)": 10.0,
    }
