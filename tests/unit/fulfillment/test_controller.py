"""The fulfillment controller's wiring: a status the API server refuses ends in an Event, not in
retries, and a refused write tells of nothing the workflow did."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from orderflow.fulfillment.controller import FulfillmentController
from orderflow.runtime.cache import ObjectKey
from orderflow.runtime.client import Kube
from orderflow.runtime.errors import Invalid

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
