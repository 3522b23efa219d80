"""Service levels on the real API server: deadlines (spec.activeDeadlineSeconds) and retry policies.

Each side owns its own: the Order's deadline is the customer's promise, the Fulfillment's (or its
controller's default) the fulfillment team's; each controller's retry policy is its operator's.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from orderflow.dev import manifests
from orderflow.dev.testing.plugin import (
    Cluster,
    Controllers,
    CustomResources,
    Kubectl,
    service_account_kubeconfig,
    wait_for,
)

from .test_describe import orderflow
from .test_identity_and_status import argo_health, kstatus


def order(name: str, seconds: float = 10, **spec: Any) -> dict[str, Any]:
    return manifests.order(name, stepDurationSeconds={"picking": seconds, "packing": seconds}, **spec)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    conditions = (obj or {}).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), {})


def warnings(kubectl: Kubectl, ns: str, kind: str, name: str, reason: str) -> int:
    """How many times the Warning Event ``reason`` was told about the object (counts folded in)."""
    items = kubectl.json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return sum(
        e.get("count") or 1
        for e in items
        if e["involvedObject"]["kind"] == kind and e["reason"] == reason and e["type"] == "Warning"
    )


def phase(crs: CustomResources, plural: str, name: str) -> str | None:
    obj = crs.find(plural, name)
    return (obj or {}).get("status", {}).get("phase")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def due_of(obj: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(obj["status"]["dueAt"].replace("Z", "+00:00"))


@pytest.fixture
def both(controllers: Controllers, namespace: str) -> Controllers:
    controllers.start("fulfillment", "--namespace", namespace)
    controllers.start("order", "--namespace", namespace)
    return controllers


def test_an_order_past_its_deadline_fails_and_its_fulfillment_is_cancelled(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources, kube_env: dict[str, str]
) -> None:
    kubectl.apply(order("late", seconds=10, activeDeadlineSeconds=3), "-n", namespace)
    fulfilling = wait_for(lambda: crs.get("orders", "late"), lambda o: o.get("status", {}).get("dueAt"), what="dueAt")
    assert due_of(fulfilling) - datetime.timedelta(seconds=3) == datetime.datetime.fromisoformat(
        fulfilling["metadata"]["creationTimestamp"].replace("Z", "+00:00")
    )
    assert "due at" in condition(fulfilling, "Ready")["message"]  # where people look while it runs
    kubectl("wait", "-n", namespace, "--for=condition=Stalled", "order/late", "--timeout=30s")
    o = crs.get("orders", "late")
    assert o["status"]["phase"] == "Failed"
    assert condition(o, "Ready")["reason"] == "DeadlineExceeded"
    assert o["status"]["deadlineExceededAt"]
    f = crs.get("fulfillments", "late")
    assert f["spec"]["cancelled"] is True
    assert f["status"]["phase"] == "Cancelled"
    assert warnings(kubectl, namespace, "Order", "late", "DeadlineExceeded") == 1
    told = orderflow(kube_env, "describe", "order/late", "-n", namespace).stdout
    due_line = next(line for line in told.splitlines() if line.strip().startswith("Due"))
    assert "missed" in due_line
    assert "its Fulfillment was cancelled" in due_line
    assert "DeadlineExceeded" in told  # the Event and the Fulfillment's history, in the timeline
    # Final once passed: the API server refuses a new deadline, and says why.
    refused = kubectl("patch", "-n", namespace, "order", "late", "--type", "merge", "-p",
                      '{"spec":{"activeDeadlineSeconds":3600}}', check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "final once the deadline has passed" in refused.stderr


def test_an_order_that_ships_before_its_deadline_completes(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("early", seconds=0.2, activeDeadlineSeconds=120), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Completed", "order/early", "--timeout=30s")
    o = crs.get("orders", "early")
    assert o["status"]["dueAt"]
    assert "deadlineExceededAt" not in o["status"]
    assert condition(o, "Ready")["reason"] == "Completed"


def test_a_raised_deadline_lets_a_running_order_go_on(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("raised", seconds=2, activeDeadlineSeconds=3), "-n", namespace)
    wait_for(lambda: phase(crs, "orders", "raised"), lambda p: p == "Fulfilling", what="Fulfilling")
    kubectl("patch", "-n", namespace, "order", "raised", "--type", "merge", "-p",
            '{"spec":{"activeDeadlineSeconds":600}}')  # fmt: skip
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Completed", "order/raised", "--timeout=30s")


def test_the_fulfillment_teams_own_deadline_is_reported_as_the_fulfillments_failure(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controllers.start("fulfillment", "--namespace", namespace, "--active-deadline-seconds", "2")
    controllers.start("order", "--namespace", namespace)
    kubectl.apply(order("slow", seconds=30), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Failed", "order/slow", "--timeout=30s")
    f = crs.get("fulfillments", "slow")
    assert f["status"]["failureReason"] == "DeadlineExceeded"
    assert condition(f, "Stalled")["reason"] == "DeadlineExceeded"
    o = crs.get("orders", "slow")
    assert condition(o, "Ready")["reason"] == "FulfillmentFailed"  # its failure, not the order's deadline
    assert "deadline exceeded" in condition(o, "Ready")["message"]
    assert "deadlineExceededAt" not in o["status"]


def test_both_controllers_killed_before_a_deadline_act_on_it_once_after_a_restart(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("crash", seconds=60, activeDeadlineSeconds=4), "-n", namespace)
    o = wait_for(lambda: crs.get("orders", "crash"), lambda o: o.get("status", {}).get("phase") == "Fulfilling")
    wait_for(lambda: phase(crs, "fulfillments", "crash"), lambda p: p == "Picking", what="Picking")
    due = due_of(o)
    assert now() < due - datetime.timedelta(seconds=1), "too slow to kill before the deadline"
    for process in both.started:
        process.kill()
    # Nothing runs now: no timer in any memory can fire. Start again once the deadline has passed.
    wait_for(now, lambda t: t > due + datetime.timedelta(seconds=1), timeout=30, what="the due time to pass")
    assert phase(crs, "orders", "crash") == "Fulfilling"
    both.start("fulfillment", "--namespace", namespace)
    both.start("order", "--namespace", namespace)
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Failed", "order/crash", "--timeout=30s")
    assert condition(crs.get("orders", "crash"), "Ready")["reason"] == "DeadlineExceeded"
    f = crs.get("fulfillments", "crash")
    assert [h["reason"] for h in f["status"]["history"]].count("Cancelled") == 1
    assert warnings(kubectl, namespace, "Order", "crash", "DeadlineExceeded") == 1


def test_retries_run_out_against_a_denied_permission_and_start_again_after_a_spec_change(
    controllers: Controllers,
    kubectl: Kubectl,
    namespace: str,
    crs: CustomResources,
    control_plane: Cluster,
    tmp_path: Path,
) -> None:
    # The order controller as a ServiceAccount that may do everything but create Fulfillments.
    account = "order-controller"
    kubectl("create", "serviceaccount", account, "-n", namespace)
    rules: list[dict[str, Any]] = [
        {"apiGroups": ["orderflow.dev"], "resources": ["orders"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["orderflow.dev"], "resources": ["orders/status"], "verbs": ["patch"]},
        {"apiGroups": ["orderflow.dev"], "resources": ["fulfillments"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": account}}
    kubectl.apply({**role, "rules": rules}, "-n", namespace)
    kubectl("create", "rolebinding", account, "-n", namespace, f"--role={account}",
            f"--serviceaccount={namespace}:{account}")  # fmt: skip
    kubeconfig = service_account_kubeconfig(kubectl, control_plane.kubeconfig, namespace, account, tmp_path)
    controllers.start("fulfillment", "--namespace", namespace)
    policy = ["--retry-initial-interval", "0.2", "--retry-max-interval", "0.5", "--retry-max-attempts", "3"]
    controllers.start("order", "--namespace", namespace, *policy, env=control_plane.env(kubeconfig))

    kubectl.apply(order("denied", seconds=0.1), "-n", namespace)
    stalled = wait_for(
        lambda: condition(crs.get("orders", "denied"), "Stalled"),
        lambda c: "gave up after 3 attempts" in c.get("message", ""),
        what="the retries to run out",
    )
    assert stalled["status"] == "True"
    assert stalled["reason"] == "FulfillmentForbidden"
    assert 'cannot create resource "fulfillments"' in stalled["message"]
    assert warnings(kubectl, namespace, "Order", "denied", "RetriesExhausted") == 1
    assert crs.find("fulfillments", "denied") is None

    # The permission is granted and the order changed: a fresh round, and this time it goes through.
    rules[2]["verbs"].append("create")
    kubectl.apply({**role, "rules": rules}, "-n", namespace)
    kubectl("patch", "-n", namespace, "order", "denied", "--type", "merge", "-p",
            '{"spec":{"shippingAddress":{"city":"Leeds"}}}')  # fmt: skip
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Completed", "order/denied", "--timeout=30s")
    assert condition(crs.get("orders", "denied"), "Stalled")["status"] == "False"


def test_kstatus_and_argo_cd_read_a_missed_deadline_as_failed_and_degraded(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controllers.start("fulfillment", "--namespace", namespace)
    controllers.start("order", "--namespace", namespace)
    kubectl.apply(order("missed", seconds=60, activeDeadlineSeconds=1), "-n", namespace)
    hand_made = manifests.fulfillment("own-limit", started=True, activeDeadlineSeconds=1,
                                      stepDurationSeconds={"picking": 60, "packing": 60})  # fmt: skip
    kubectl.apply(hand_made, "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Stalled", "order/missed", "--timeout=30s")
    kubectl("wait", "-n", namespace, "--for=condition=Stalled", "fulfillment/own-limit", "--timeout=30s")
    assert kstatus(kubectl, namespace, "order", "missed") == {"missed": "Failed"}
    assert kstatus(kubectl, namespace, "fulfillment", "own-limit", "missed") == {
        "own-limit": "Failed",
        "missed": "Current",  # cancelled as its spec asks: the Order is the one that failed
    }
    assert argo_health(kubectl, namespace, "order", "missed") == {"missed": "Degraded"}
    assert argo_health(kubectl, namespace, "fulfillment", "own-limit") == {"own-limit": "Degraded"}
