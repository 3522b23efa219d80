"""The fulfillment controller's Kopf wiring: read, decide, write, schedule. Nothing else.

It watches Fulfillments (``@kopf.on.event``: no finalizer, no annotations), reconciles each one
with the pure ``workflow.decide``, and writes only the ``status`` subresource, with the
resourceVersion it decided on, so a decision made on stale state is refused (409) and made again.
It never reads or writes Orders; it does not know who created a Fulfillment.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from orderflow.api.common import GROUP, VERSION, utcnow
from orderflow.api.fulfillment import PLURAL, FulfillmentSpec, FulfillmentStatus
from orderflow.fulfillment import workflow
from orderflow.runtime import metrics
from orderflow.runtime.cache import ObjectKey, Store
from orderflow.runtime.client import AsyncKube, Conflict, Kube, NotFound, merge_patch
from orderflow.runtime.logs import log_decision
from orderflow.runtime.runner import controller_registry
from orderflow.runtime.status import CONFLICT_RETRY_SECONDS
from orderflow.runtime.workqueue import WorkQueue

COMPONENT = "fulfillment-controller"
log = logging.getLogger("orderflow.fulfillment")


class FulfillmentController:
    def __init__(self, kube: Kube, step_seconds: float, workers: int = 4, default_ttl: int | None = None) -> None:
        self.kube = AsyncKube(kube, COMPONENT)
        # The default duration of each step, for Fulfillments that set none.
        self.step_times = workflow.StepTimes(picking=step_seconds, packing=step_seconds)
        self.default_ttl = default_ttl  # retention of finished Fulfillments that serve no Order
        self.store = Store()
        self.queue: WorkQueue[ObjectKey] = WorkQueue(COMPONENT, self.reconcile, workers=workers)
        metrics.count_phases(COMPONENT, "Fulfillment", self.store.values)

    def observe(self, event_type: str | None, body: Any) -> None:
        key = ObjectKey.of(body)
        if event_type == "DELETED":
            self.store.remove(key)
            self.queue.forget(key)
            return
        self.store.put(body)
        self.queue.add(key)

    async def reconcile(self, key: ObjectKey) -> float | None:
        body = self.store.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        now = utcnow()
        try:
            observed = _parse(body)
        except ValidationError as exc:
            return await self._write(body, workflow.reject_spec(_status_of(body), _generation(body), exc, now))
        decision = workflow.decide(observed, now, self.step_times, self.default_ttl)
        if decision.expired:
            return await self._expire(body)
        return await self._write(body, decision, before=observed.status)

    async def _expire(self, body: dict[str, Any]) -> float | None:
        meta = body["metadata"]
        try:
            await self.kube.delete(PLURAL, meta["namespace"], meta["name"], meta["resourceVersion"])
        except Conflict:  # changed since (a new time to live, say): decide again on the new version
            return CONFLICT_RETRY_SECONDS
        log.info(
            "Fulfillment %s/%s: deleted, its time to live after finishing is over", meta["namespace"], meta["name"]
        )
        return None

    async def _write(
        self, body: dict[str, Any], decision: workflow.Decision, before: FulfillmentStatus | None = None
    ) -> float | None:
        before = before if before is not None else _status_of(body)
        if decision.changed(before):
            meta = body["metadata"]
            patch = {
                "metadata": {"resourceVersion": meta["resourceVersion"]},
                "status": merge_patch(body.get("status") or {}, decision.status.wire()),
            }
            try:
                updated = await self.kube.patch(PLURAL, meta["namespace"], meta["name"], patch, "status")
            except Conflict:
                # Decided on a version that is no longer current: the watch brings the newer one
                # and its event reconciles again (the store is fed by the watch only).
                metrics.CONFLICTS.labels(COMPONENT).inc()
                return CONFLICT_RETRY_SECONDS
            except NotFound:
                return None
            _count_transitions(decision)
            for event in decision.events:
                self.kube.event(updated, event.type, event.reason, event.message)
            log_decision(
                log,
                "Fulfillment",
                ObjectKey.of(body),
                before.phase.value,
                decision.status.phase.value,
                transitions=decision.transitions,
                events=decision.events,
            )
        return decision.wake_after


def _generation(body: dict[str, Any]) -> int:
    return int(body["metadata"].get("generation", 1))


def _status_of(body: dict[str, Any]) -> FulfillmentStatus:
    try:
        return FulfillmentStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return FulfillmentStatus()


def _parse(body: dict[str, Any]) -> workflow.Observed:
    meta = body["metadata"]
    return workflow.Observed(
        name=meta["name"],
        uid=meta["uid"],
        generation=_generation(body),
        spec=FulfillmentSpec.model_validate(body.get("spec") or {}),
        status=FulfillmentStatus.model_validate(body.get("status") or {}),
    )


def _count_transitions(decision: workflow.Decision) -> None:
    for reason in decision.transitions:
        metrics.TRANSITIONS.labels(COMPONENT, reason).inc()
    for step, seconds in decision.completed_steps:
        metrics.STEP_SECONDS.labels(COMPONENT, step).observe(seconds)


def build_registry(controller: FulfillmentController) -> kopf.OperatorRegistry:
    """Kopf only watches; everything else happens in the controller's reconcile."""
    registry = controller_registry(COMPONENT, controller.queue)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def fulfillment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.observe(type, body)

    return registry
