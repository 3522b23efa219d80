"""A write's response must never hide a newer state the watch has already delivered.

Found by the benchmark (2 of 1,000 orders stuck in Fulfilling): the order controller put the
Fulfillment returned by its create into its cache after the watch had already delivered the
Fulfillment as Shipped, so every later reconcile saw the stale copy. The race needs a create that
returns after the watch event, which a real API server does only now and then, so a fake client
holds the create open here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from orderflow.api.evidence import tracking_number
from orderflow.order.controller import OrderController
from orderflow.order.workflow import FINALIZER
from orderflow.runtime.cache import ObjectKey
from orderflow.runtime.client import Kube
from orderflow.runtime.pure.errors import Conflict

ADDRESS = {"name": "Ada", "street": "1 Way", "city": "London", "postalCode": "N1", "country": "GB"}


class HeldCreate:
    """Answers like the API server, but holds a create open until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.creating = asyncio.Event()
        self.status_patches: list[dict[str, Any]] = []

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.creating.set()
        await self.release.wait()
        return {**body, "metadata": {**body["metadata"], "uid": "f-uid", "resourceVersion": "10", "generation": 1}}

    async def patch(
        self, plural: str, ns: str, name: str, patch: dict[str, Any], sub: str | None = None
    ) -> dict[str, Any]:
        if sub == "status":
            self.status_patches.append(patch["status"])
        return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "99", "generation": 1}}

    async def find(self, plural: str, namespace: str, name: str) -> None:
        return None

    async def delete(self, plural: str, ns: str, name: str, resource_version: str | None = None) -> None:
        raise AssertionError("nothing is deleted here")

    def event(self, *args: Any) -> None:
        pass


def order_body(status: dict[str, Any] | None = None, rv: str = "5") -> dict[str, Any]:
    return {
        "apiVersion": "orderflow.dev/v1alpha1",
        "kind": "Order",
        "metadata": {"name": "o1", "namespace": "ns", "uid": "o-uid", "resourceVersion": rv, "generation": 1,
                     "finalizers": [FINALIZER]},
        "spec": {"customerEmail": "a@example.com", "items": [{"sku": "A", "quantity": 1}], "shippingAddress": ADDRESS},
        **({"status": status} if status else {}),
    }  # fmt: skip


def shipped_fulfillment() -> dict[str, Any]:
    return {
        "metadata": {"name": "o1", "namespace": "ns", "uid": "f-uid", "resourceVersion": "12", "generation": 1},
        "spec": {"orderRef": {"name": "o1", "uid": "o-uid"}, "paused": False, "cancelled": False,
                 "shippingAddress": ADDRESS},
        "status": {"phase": "Shipped", "observedGeneration": 1, "trackingNumber": tracking_number("f-uid"),
                   "startedAt": "2026-12-06T00:00:00Z", "completedAt": "2026-12-06T00:00:01Z",
                   "history": [{"time": "2026-12-06T00:00:01Z", "phase": "Shipped", "reason": "Shipped"}],
                   "progress": {"currentStep": "Shipped", "completedSteps": 3, "totalSteps": 3, "percent": 100}},
    }  # fmt: skip


def test_a_create_response_does_not_hide_the_shipped_fulfillment_the_watch_delivered() -> None:
    async def scenario() -> list[dict[str, Any]]:
        controller = OrderController(Kube(api=None), ack_timeout=30)
        fake = HeldCreate()
        controller.kube = fake
        key = ObjectKey("ns", "o1")
        controller.observe_order(None, order_body())
        first = asyncio.create_task(controller.reconcile(key))
        await fake.creating.wait()
        controller.observe_fulfillment("MODIFIED", shipped_fulfillment())  # the watch is faster
        fake.release.set()
        await first
        # The status the first reconcile wrote comes back through the watch, then the queued
        # reconcile (the Fulfillment event arrived while the first one ran) looks again.
        controller.observe_order("MODIFIED", order_body(fake.status_patches[-1], rv="6"))
        await controller.reconcile(key)
        return fake.status_patches

    patches = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert patches[0]["phase"] == "Fulfilling"
    assert patches[-1]["phase"] == "Completed", patches[-1]


class SameNameReplacement:
    """The API server after our Fulfillment was replaced by another of the same name, which the
    controller's cache has not seen yet; deletes honour preconditions as the API server's do."""

    def __init__(self) -> None:
        self.stored = {**shipped_fulfillment(), "metadata": {**shipped_fulfillment()["metadata"], "uid": "new-uid"}}
        self.deleted = False

    async def delete(
        self, plural: str, ns: str, name: str, resource_version: str | None = None, uid: str | None = None
    ) -> None:
        meta = self.stored["metadata"]
        if uid not in (None, meta["uid"]) or resource_version not in (None, meta["resourceVersion"]):
            raise Conflict(409, "Conflict", "Precondition failed")
        self.deleted = True

    async def patch(
        self, plural: str, ns: str, name: str, patch: dict[str, Any], sub: str | None = None
    ) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "99", "generation": 1}}

    async def find(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self.stored

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("nothing is created here")

    def event(self, *args: Any) -> None:
        pass


def test_policy_delete_never_deletes_a_same_name_replacement_the_cache_has_not_seen() -> None:
    async def scenario() -> SameNameReplacement:
        controller = OrderController(Kube(api=None), ack_timeout=30)
        fake = SameNameReplacement()
        controller.kube = fake
        mirrored = {"phase": "Completed", "fulfillment": {"name": "o1", "uid": "f-uid"}}
        deleting = order_body(mirrored)
        deleting["spec"]["deletionPolicy"] = "Delete"
        deleting["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
        controller.observe_order(None, deleting)
        controller.observe_fulfillment(None, shipped_fulfillment())  # ours, as the cache last saw it
        await controller.reconcile(ObjectKey("ns", "o1"))
        return fake

    fake = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert not fake.deleted, "the replacement was deleted by name"
