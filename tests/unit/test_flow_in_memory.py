"""Both controllers, both cores and the work queues, against an API server held in memory.

One order runs its whole course (created paused, address changed, resumed, shipped, then an
address change refused after shipping), and what operators and many others read is checked for
personal data: every Event, the Fulfillment's history, every condition and every log line. The
log lines themselves (one per decision that changed something) and the transition counters are
checked on the same run.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import looptime
import pytest
from prometheus_client import REGISTRY

from orderflow.api.common import API_VERSION
from orderflow.api.fulfillment import PLURAL as FULFILLMENTS
from orderflow.api.order import PLURAL as ORDERS
from orderflow.fulfillment.controller import COMPONENT as FULFILLMENT_CONTROLLER
from orderflow.fulfillment.controller import FulfillmentController
from orderflow.order.controller import COMPONENT as ORDER_CONTROLLER
from orderflow.order.controller import OrderController
from orderflow.runtime.client import Kube
from orderflow.runtime.pure.errors import Conflict, NotFound

ADDRESS = {"name": "Ada Lovelace", "street": "12 St James's Square", "city": "London",
           "postalCode": "SW1Y 4JH", "country": "GB"}  # fmt: skip
MOVED = {"name": "Augusta King", "street": "Ockham Park", "city": "Ockham", "postalCode": "GU23 6NL", "country": "GB"}
LATE = {
    "name": "Mary Somerville",
    "street": "1 Chelsea Row",
    "city": "London",
    "postalCode": "SW3 9ZZ",
    "country": "GB",
}
EMAIL = "ada.lovelace@example.com"
# What must never appear in an Event, a history entry, a condition or a log line: the email and
# every part of each address but the country (two letters, which would match unrelated words).
PARTS = ("name", "street", "postalCode", "city")
PERSONAL = [EMAIL] + [address[k] for address in (ADDRESS, MOVED, LATE) for k in PARTS]


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the API server applies a merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


class MemoryApi:
    """What the controllers ask of the API server (orderflow.runtime.client.KubeClient), in memory:
    resourceVersion checked on patches that carry one, generation moved by spec changes only,
    the status subresource writing only status, every change delivered to the watchers."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[dict[str, str]] = []
        self.watchers: dict[str, list[Callable[[str, dict[str, Any]], None]]] = {ORDERS: [], FULFILLMENTS: []}
        self._versions = itertools.count(1)

    def _deliver(self, plural: str, event: str, body: dict[str, Any]) -> None:
        for watcher in self.watchers[plural]:
            watcher(event, copy.deepcopy(body))

    def add(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if (plural, namespace, name) in self.objects:
            raise Conflict(409, "AlreadyExists", f"{name} already exists")
        stored = copy.deepcopy(body)
        n = next(self._versions)
        stored["metadata"].update(namespace=namespace, uid=f"uid-{n}", resourceVersion=str(n), generation=1)
        self.objects[(plural, namespace, name)] = stored
        self._deliver(plural, "ADDED", stored)
        return copy.deepcopy(stored)

    def change(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        stored = self.objects.get((plural, namespace, name))
        if stored is None:
            raise NotFound(404, "NotFound", f"{name} not found")
        patch = copy.deepcopy(patch)
        wanted = (patch.get("metadata") or {}).pop("resourceVersion", None)
        if wanted is not None and wanted != stored["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        if subresource == "status":
            patch = {"status": patch["status"]}
        else:
            patch.pop("status", None)
        spec_before = copy.deepcopy(stored.get("spec"))
        merge(stored, patch)
        if stored.get("spec") != spec_before:
            stored["metadata"]["generation"] += 1
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        self._deliver(plural, "MODIFIED", stored)
        return copy.deepcopy(stored)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(plural, namespace, name)])

    # -- KubeClient's calls ---------------------------------------------------------------------

    async def find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((plural, namespace, name))
        return copy.deepcopy(found) if found else None

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.add(plural, namespace, body)

    async def patch(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        return self.change(plural, namespace, name, patch, subresource)

    async def delete(self, plural: str, namespace: str, name: str, resource_version: str | None = None) -> None:
        stored = self.objects.get((plural, namespace, name))
        if stored is not None and resource_version not in (None, stored["metadata"]["resourceVersion"]):
            raise Conflict(409, "Conflict", "the object has been modified")  # a precondition, as the API server's
        self.objects.pop((plural, namespace, name), None)

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append({"kind": obj.get("kind", "?"), "type": type_, "reason": reason, "message": message})


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(what: str, predicate: Callable[[], bool]) -> None:
    try:
        async with asyncio.timeout(10):
            while not predicate():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (body.get("status") or {}).get("conditions", []) if c["type"] == type_), {})


def run_flow(api: MemoryApi) -> None:
    async def scenario() -> None:
        orders = OrderController(Kube(api=None), ack_timeout=30, workers=2)
        fulfillments = FulfillmentController(Kube(api=None), step_seconds=0, workers=2)
        orders.kube = fulfillments.kube = api
        api.watchers[ORDERS].append(orders.observe_order)
        api.watchers[FULFILLMENTS] += [orders.observe_fulfillment, fulfillments.observe]
        orders.queue.start()
        fulfillments.queue.start()
        try:
            order = {"apiVersion": API_VERSION, "kind": "Order", "metadata": {"name": "o1"}, "spec": {
                "customerEmail": EMAIL, "items": [{"sku": "BOOK", "quantity": 1}], "shippingAddress": ADDRESS,
                "paused": True, "stepDurationSeconds": {"picking": 0, "packing": 0}}}  # fmt: skip
            api.add(ORDERS, "ns", order)

            def status(plural: str) -> dict[str, Any]:
                return (api.objects.get((plural, "ns", "o1")) or {}).get("status") or {}

            def refused() -> bool:
                return condition(api.get(ORDERS, "ns", "o1"), "SignalsAccepted").get("status") == "False"

            await until("the Fulfillment to start paused", lambda: status(FULFILLMENTS).get("paused") is True)
            api.change(ORDERS, "ns", "o1", {"spec": {"shippingAddress": MOVED}})
            await until("the new address", lambda: status(FULFILLMENTS).get("shippingAddress") == MOVED)
            api.change(ORDERS, "ns", "o1", {"spec": {"paused": False}})
            await until("the Order to complete", lambda: status(ORDERS).get("phase") == "Completed")
            api.change(ORDERS, "ns", "o1", {"spec": {"shippingAddress": LATE}})  # too late: refused
            await until("the Order to report the refusal", refused)
            await asyncio.sleep(1)  # the last writes and Events, and any first retry (0.5 s), are made by then
        finally:
            await orders.queue.stop()
            await fulfillments.queue.stop()

    # On a fake loop clock (looptime): it moves only when nothing is ready to run, so a wait ends
    # once everything the last change caused has run, however slow the machine. The controllers'
    # own timers are due at 30 s (the acknowledgement timeout): the scenario ends before them.
    with asyncio.Runner(loop_factory=looptime.new_event_loop) as runner:
        runner.run(asyncio.wait_for(scenario(), timeout=20))


@pytest.fixture
def flow(caplog: pytest.LogCaptureFixture) -> tuple[MemoryApi, list[logging.LogRecord], dict[str, float]]:
    counted = {
        "Fulfilling": sample("orderflow_transitions_total", controller=ORDER_CONTROLLER, reason="Fulfilling"),
        "Completed": sample("orderflow_transitions_total", controller=ORDER_CONTROLLER, reason="Completed"),
        "Shipped": sample("orderflow_transitions_total", controller=FULFILLMENT_CONTROLLER, reason="Shipped"),
    }
    caplog.set_level(logging.DEBUG, logger="orderflow")
    api = MemoryApi()
    run_flow(api)
    after = {
        "Fulfilling": sample("orderflow_transitions_total", controller=ORDER_CONTROLLER, reason="Fulfilling"),
        "Completed": sample("orderflow_transitions_total", controller=ORDER_CONTROLLER, reason="Completed"),
        "Shipped": sample("orderflow_transitions_total", controller=FULFILLMENT_CONTROLLER, reason="Shipped"),
    }
    return api, list(caplog.records), {k: after[k] - counted[k] for k in counted}


def test_no_event_history_condition_or_log_line_carries_personal_data(
    flow: tuple[MemoryApi, list[logging.LogRecord], dict[str, float]],
) -> None:
    api, records, _ = flow
    fulfillment, order = api.get(FULFILLMENTS, "ns", "o1"), api.get(ORDERS, "ns", "o1")
    reasons = {e["reason"] for e in api.events}
    # The run went where the messages used to name the customer: a changed address, a shipment.
    assert {"AddressChanged", "Shipped", "Completed", "AddressChangeRefused"} <= reasons, reasons
    texts = [
        *[(f"Event {e['kind']} {e['reason']}", e["message"]) for e in api.events],
        *[(f"history {h['reason']}", h["message"]) for h in fulfillment["status"]["history"]],
        *[
            (f"{kind} condition {c['type']}", c["message"])
            for kind, body in (("Fulfillment", fulfillment), ("Order", order))
            for c in body["status"]["conditions"]
        ],
        *[(f"log {r.name}", r.getMessage() + repr(getattr(r, "data", ""))) for r in records],
    ]
    leaks = [(where, text) for where, text in texts if any(value in text for value in PERSONAL)]
    assert not leaks
    shipped = next(h["message"] for h in fulfillment["status"]["history"] if h["reason"] == "Shipped")
    assert shipped == f"shipped (tracking number {fulfillment['status']['trackingNumber']})"


def test_each_decision_that_changed_something_is_one_log_line_naming_the_object(
    flow: tuple[MemoryApi, list[logging.LogRecord], dict[str, float]],
) -> None:
    _, records, _ = flow
    ours = [r for r in records if r.name in ("orderflow.order", "orderflow.fulfillment")]
    # Each controller handles one key at a time, so each object's lines come in order; reconciles
    # that changed nothing worth telling (a mirrored step, an acknowledgement) add none.
    assert [r.getMessage() for r in ours if r.name == "orderflow.order"] == [
        "Order ns/o1: Pending -> Fulfilling; added finalizer, created Fulfillment o1; events FulfillmentCreated",
        "Order ns/o1: Fulfilling; sent signals shippingAddress (changed); events SignalSent",
        "Order ns/o1: Fulfilling; sent signals paused=false; events SignalSent",
        "Order ns/o1: Fulfilling -> Completed; events Completed",
        "Order ns/o1: Completed; sent signals shippingAddress (changed); events SignalSent",
        "Order ns/o1: Completed; events AddressChangeRefused",
    ]
    assert [r.getMessage() for r in ours if r.name == "orderflow.fulfillment"] == [
        "Fulfillment ns/o1: Pending -> Picking (Started, Paused)",
        "Fulfillment ns/o1: Picking; events AddressChanged",
        "Fulfillment ns/o1: Picking -> Shipped (Resumed, Picked, Shipped)",
        "Fulfillment ns/o1: Shipped; events AddressChangeRefused",
    ]
    # A refusal is a Warning Event, and its line a WARNING; the rest are INFO.
    levels = {r.getMessage(): r.levelname for r in ours}
    assert {m for m, level in levels.items() if level == "WARNING"} == {
        "Order ns/o1: Completed; events AddressChangeRefused",
        "Fulfillment ns/o1: Shipped; events AddressChangeRefused",
    }
    assert set(levels.values()) == {"INFO", "WARNING"}
    first = ours[0]
    assert getattr(first, "k8s_ref", None) == {"kind": "Order", "namespace": "ns", "name": "o1"}
    assert getattr(first, "data", {})["actions"] == ["added finalizer", "created Fulfillment o1"]


def test_order_and_fulfillment_transitions_are_counted(
    flow: tuple[MemoryApi, list[logging.LogRecord], dict[str, float]],
) -> None:
    _, _, counted = flow
    assert counted == {"Fulfilling": 1, "Completed": 1, "Shipped": 1}
