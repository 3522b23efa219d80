"""The fulfillment controller's wiring: a status the API server refuses ends in an Event, not in
retries, and a refused write tells of nothing the workflow did."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from orderflow.fulfillment.controller import FulfillmentController
from orderflow.runtime.cache import ObjectKey
from orderflow.runtime.client import Kube
from orderflow.runtime.pure.errors import Invalid

ADDRESS = {"name": "Ada", "street": "1 Way", "city": "London", "postalCode": "N1", "country": "GB"}


class RefusesStatus:
    """An API server whose schema refuses every status (an older CRD, say)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("nothing is created here")

    async def patch(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        raise Invalid(422, "Invalid", 'status.phase: Unsupported value: "Picking"')

    async def delete(self, plural: str, namespace: str, name: str, resource_version: str | None = None) -> None:
        raise AssertionError("nothing is deleted here")

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason))


def test_a_refused_status_is_a_warning_event_and_the_step_is_looked_at_again_when_due() -> None:
    async def scenario() -> tuple[float | None, list[tuple[str, str]]]:
        controller = FulfillmentController(Kube(api=None), step_seconds=10)
        fake = RefusesStatus()
        controller.kube = fake
        controller.observe("ADDED", {
            "kind": "Fulfillment",
            "metadata": {"name": "f1", "namespace": "ns", "uid": "u1", "resourceVersion": "1", "generation": 1},
            "spec": {"items": [{"sku": "A", "quantity": 1}], "customerEmail": "a@example.com",
                     "shippingAddress": ADDRESS, "started": True},
        })  # fmt: skip
        again = await controller.reconcile(ObjectKey("ns", "f1"))
        return again, fake.events

    again, events = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    # Only the refusal: the Started the decision made was never written, so it is not told.
    assert events == [("Warning", "StatusRejected")]
    assert again == 10  # the step's end, as if written: the next decision is made on what is stored


def listed_fulfillment(name: str, phase: str, picking_seconds: float, resumed: datetime.datetime) -> dict[str, Any]:
    """A Fulfillment as a restart's listing delivers it: in ``phase`` since ``resumed``."""
    status: dict[str, Any] = {"phase": phase, "observedGeneration": 1}
    if phase == "Picking":
        status.update(startedAt=resumed.isoformat(), stepStartedAt=resumed.isoformat(),
                      stepResumedAt=resumed.isoformat(), stepElapsedSeconds=0)  # fmt: skip
    return {
        "kind": "Fulfillment",
        "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "resourceVersion": "1", "generation": 1},
        "spec": {"items": [{"sku": "A", "quantity": 1}], "customerEmail": "a@example.com", "shippingAddress": ADDRESS,
                 "started": True, "stepDurationSeconds": {"picking": picking_seconds, "packing": 3600}},
        "status": status,
    }  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.looptime  # a fake loop clock: an hour passes at once
async def test_after_a_restart_a_step_that_fell_due_goes_before_the_rest_of_the_listing() -> None:
    """Listed objects wait behind changed ones; a step that ended while the controller was down
    must not wait for all of them (issue #22: 10,000 in flight, steps 18 s late)."""
    now = datetime.datetime.now(datetime.UTC)
    controller = FulfillmentController(Kube(api=None), step_seconds=10)
    order: list[str] = []

    async def record(key: ObjectKey) -> float | None:
        order.append(key.name)
        return None  # no wake-up from here: only one set at listing can bring a key back

    controller.queue._reconcile = record  # what runs first, not what it writes
    for i in range(50):  # finished ones, listed first
        controller.observe(None, listed_fulfillment(f"done-{i:02d}", "Shipped", 10, now))
    controller.observe(None, listed_fulfillment("waiting", "Picking", 3600, now))  # due in an hour
    controller.observe(None, listed_fulfillment("overdue", "Picking", 10, now - datetime.timedelta(seconds=60)))
    done_timed = controller.queue.scheduled(ObjectKey("ns", "done-00"))
    controller.queue.start()
    # The step's end is read on the wall clock, a few milliseconds after `now`: a margin of seconds.
    await asyncio.sleep(3595)
    listing = list(order)
    await asyncio.sleep(5)
    await controller.queue.stop()
    assert listing[0] == "overdue"
    assert sorted(listing) == sorted([f"done-{i:02d}" for i in range(50)] + ["waiting", "overdue"])  # each once
    assert order[len(listing) :] == ["waiting"]  # its wake-up was set at listing, for its step's end
    assert not done_timed  # a finished one needs no look
