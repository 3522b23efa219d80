"""The fulfillment controller, as a separate process, driven only through Fulfillment spec."""

from __future__ import annotations

import datetime
import time
from typing import Any

from orderflow.dev import manifests
from orderflow.dev.testing.plugin import Controllers, CustomResources, Kubectl, wait_for


def fulfillment(name: str, picking: float, packing: float, **spec: Any) -> dict[str, Any]:
    """A Fulfillment made by hand, with the step durations each test needs."""
    return manifests.fulfillment(name, stepDurationSeconds={"picking": picking, "packing": packing}, **spec)


def patch(kubectl: Kubectl, ns: str, name: str, spec: str) -> None:
    kubectl("patch", "-n", ns, "fulfillment", name, "--type", "merge", "-p", '{"spec":' + spec + "}")


def status(crs: CustomResources, name: str) -> dict[str, Any]:
    return crs.get("fulfillments", name).get("status") or {}


def condition(obj_status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj_status.get("conditions", []) if c["type"] == type_), {})


def history(crs: CustomResources, name: str) -> dict[str, datetime.datetime]:
    entries = status(crs, name).get("history", [])
    reasons = [e["reason"] for e in entries if e["reason"] not in ("Paused", "Resumed")]
    assert len(reasons) == len(set(reasons)), f"a transition happened twice: {reasons}"
    return {e["reason"]: datetime.datetime.fromisoformat(e["time"]) for e in entries}


def events(kubectl: Kubectl, ns: str, name: str) -> list[str]:
    listed = kubectl.json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
    return [e["reason"] for e in listed["items"]]


def test_a_hand_made_fulfillment_runs_to_shipped_and_kubectl_wait_returns(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controllers.start("fulfillment", "--namespace", namespace)
    kubectl.apply(fulfillment("parcel", 0.3, 0.3), "-n", namespace)
    pending = wait_for(lambda: status(crs, "parcel"), lambda s: s.get("phase") == "Pending", what="Pending")
    assert condition(pending, "Ready")["reason"] == "NotStarted"

    patch(kubectl, namespace, "parcel", '{"started":true}')
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/parcel", "--timeout=60s")

    final = status(crs, "parcel")
    assert final["phase"] == "Shipped"
    assert final["trackingNumber"].startswith("OF")
    assert final["progress"]["percent"] == 100
    assert list(history(crs, "parcel")) == ["Started", "Picked", "Shipped"]
    wait_for(lambda: events(kubectl, namespace, "parcel"), lambda r: {"Started", "Picked", "Shipped"} <= set(r))


def test_pause_is_acknowledged_holds_the_step_and_resume_continues(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controllers.start("fulfillment", "--namespace", namespace)
    kubectl.apply(fulfillment("parcel", 2.0, 0.2, started=True), "-n", namespace)
    wait_for(lambda: status(crs, "parcel"), lambda s: s.get("phase") == "Picking", what="Picking")

    patch(kubectl, namespace, "parcel", '{"paused":true}')
    obj = wait_for(
        lambda: crs.get("fulfillments", "parcel"),
        lambda o: o.get("status", {}).get("observedGeneration") == o["metadata"]["generation"],
        what="the pause to be acknowledged (observedGeneration == generation)",
    )
    paused = obj["status"]
    assert paused["paused"] is True
    assert condition(paused, "Paused")["status"] == "True"
    assert condition(paused, "Paused")["observedGeneration"] == obj["metadata"]["generation"]
    assert "stepResumedAt" not in paused  # the step's clock is stopped, durably
    assert paused["stepElapsedSeconds"] < 2.0

    time.sleep(1.0)  # the person keeps it paused a while (an action, not an assertion)
    patch(kubectl, namespace, "parcel", '{"paused":false}')
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/parcel", "--timeout=60s")
    times = history(crs, "parcel")
    # The paused second was not counted: picking ended no earlier than 2 s of running + 1 s paused.
    assert times["Picked"] - times["Started"] >= datetime.timedelta(seconds=3.0)
    assert [e["reason"] for e in status(crs, "parcel")["history"]][:3] == ["Started", "Paused", "Resumed"]


def test_sigkill_mid_step_resumes_the_same_step_with_its_time_counted(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    first = controllers.start("fulfillment", "--namespace", namespace)
    kubectl.apply(fulfillment("parcel", 3.0, 1.0, started=True), "-n", namespace)
    wait_for(lambda: status(crs, "parcel"), lambda s: s.get("phase") == "Picking", what="Picking")
    first.kill()
    killed_in = status(crs, "parcel")
    assert killed_in["phase"] == "Picking"
    time.sleep(1.0)  # down for a second, mid-step

    controllers.start("fulfillment", "--namespace", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/parcel", "--timeout=60s")
    times = history(crs, "parcel")  # asserts no transition twice
    assert list(times) == ["Started", "Picked", "Shipped"]
    assert times["Started"].isoformat() == killed_in["startedAt"].replace("Z", "+00:00")  # not restarted
    # The step kept its clock across the crash: it ended 3 s after it started, downtime included.
    picking = (times["Picked"] - times["Started"]).total_seconds()
    assert abs(picking - 3.0) < 0.05, picking


def test_signals_after_shipping_are_refused_with_a_condition_and_an_event(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controllers.start("fulfillment", "--namespace", namespace)
    kubectl.apply(fulfillment("parcel", 0, 0, started=True), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/parcel", "--timeout=60s")

    patch(kubectl, namespace, "parcel", '{"cancelled":true}')
    refused = wait_for(
        lambda: status(crs, "parcel"),
        lambda s: condition(s, "Accepted").get("reason") == "CancelRefused",
        what="the cancel to be refused",
    )
    assert refused["phase"] == "Shipped"
    assert "already shipped" in condition(refused, "Accepted")["message"]

    patch(kubectl, namespace, "parcel", '{"shippingAddress":{"city":"Boston"}}')
    readdressed = wait_for(
        lambda: status(crs, "parcel"),
        lambda s: "shipping address cannot change" in condition(s, "Accepted").get("message", ""),
        what="the address change to be refused",
    )
    assert readdressed["shippingAddress"]["city"] == manifests.ADDRESS["city"]  # the one it shipped to
    wait_for(
        lambda: events(kubectl, namespace, "parcel"),
        lambda r: {"CancelRefused", "AddressChangeRefused"} <= set(r),
        what="Warning events for both refusals",
    )


def test_nonsense_state_does_not_stop_the_controller_or_other_fulfillments(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controller = controllers.start("fulfillment", "--namespace", namespace)
    kubectl.apply(fulfillment("broken", 0.2, 0.2), "-n", namespace)
    wait_for(lambda: status(crs, "broken"), lambda s: s.get("phase") == "Pending", what="Pending")
    # Someone with access to /status writes a running step with no clock and nonsense progress.
    crs.patch(
        "fulfillments",
        "broken",
        {"status": {"phase": "Packing", "progress": None, "stepStartedAt": None, "history": []}},
        status=True,
    )
    kubectl.apply(fulfillment("healthy", 0.2, 0.2, started=True), "-n", namespace)
    patch(kubectl, namespace, "broken", '{"started":true}')
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/healthy", "--timeout=60s")
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/broken", "--timeout=60s")
    assert controller.proc is not None
    assert controller.proc.poll() is None
