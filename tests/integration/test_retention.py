"""Retention: finished workflows are deleted ``ttlSecondsAfterFinished`` after they finished, as
Jobs are; a Fulfillment serving a live Order is never removed first; a restart keeps the clock."""

from __future__ import annotations

import datetime
import time

from orderflow.dev import manifests
from orderflow.dev.testing.plugin import Controllers, CustomResources, Kubectl, wait_for

from .test_order_controller import order


def exists(crs: CustomResources, plural: str, name: str) -> bool:
    return crs.find(plural, name) is not None


def test_a_finished_order_goes_after_its_time_to_live_and_its_fulfillment_after_it(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controllers.start("fulfillment", "--namespace", namespace)
    controllers.start("order", "--namespace", namespace)
    kubectl.apply(order("short", ttlSecondsAfterFinished=2), "-n", namespace)
    kubectl.apply(order("kept"), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "order/short", "order/kept", "--timeout=60s")

    # Never the Fulfillment first: watch both until both are gone.
    deadline = time.monotonic() + 60
    while exists(crs, "orders", "short") or exists(crs, "fulfillments", "short"):
        assert exists(crs, "fulfillments", "short") or not exists(crs, "orders", "short"), (
            "the Fulfillment went while its Order still lived"
        )
        assert time.monotonic() < deadline, "the finished Order and its Fulfillment were not removed"
        time.sleep(0.05)
    assert exists(crs, "orders", "kept")  # no time to live: kept
    assert exists(crs, "fulfillments", "kept")


def test_a_restart_in_the_middle_keeps_the_clock(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controllers.start("fulfillment", "--namespace", namespace)
    order_controller = controllers.start("order", "--namespace", namespace)
    kubectl.apply(order("r", ttlSecondsAfterFinished=4), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "order/r", "--timeout=60s")
    order_controller.stop()
    completed = datetime.datetime.fromisoformat(crs.get("orders", "r")["status"]["completedAt"])
    due = completed + datetime.timedelta(seconds=4)
    # The time to live runs out while the controller is down (a scenario step, not an assertion).
    wait_for(lambda: datetime.datetime.now(datetime.UTC), lambda now: now > due, timeout=30, interval=0.2)
    assert exists(crs, "orders", "r")
    controllers.start("order", "--namespace", namespace)
    wait_for(lambda: exists(crs, "orders", "r"), lambda still: not still, timeout=30, what="deletion after the restart")


def test_the_default_applies_to_fulfillments_that_serve_no_order(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controllers.start("fulfillment", "--namespace", namespace, "--ttl-seconds-after-finished", "0")
    controllers.start("order", "--namespace", namespace)
    kubectl.apply(
        manifests.fulfillment("alone", started=True, stepDurationSeconds={"picking": 0, "packing": 0}), "-n", namespace
    )
    kubectl.apply(order("served", picking=0, packing=0), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "order/served", "--timeout=60s")
    wait_for(lambda: exists(crs, "fulfillments", "alone"), lambda still: not still, what="the hand-made one to go")
    assert exists(crs, "fulfillments", "served")  # serves a live Order: the default does not apply
