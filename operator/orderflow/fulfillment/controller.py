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
from orderflow.runtime.client import AsyncKube, Kube, KubeClient
from orderflow.runtime.logs import log_decision
from orderflow.runtime.pure.errors import Conflict
from orderflow.runtime.pure.reading import created_at, generation_of, status_of
from orderflow.runtime.retry import RetryPolicy
from orderflow.runtime.runner import controller_registry
from orderflow.runtime.status import CONFLICT_RETRY_SECONDS, Outcome, StatusWriter
from orderflow.runtime.workqueue import WorkQueue, listed, observe

# What `orderflow run` reads here: PLURAL is the kind its readiness check lists.
__all__ = ["COMPONENT", "PLURAL", "FulfillmentController", "build_registry"]

COMPONENT = "fulfillment-controller"
log = logging.getLogger("orderflow.fulfillment")


class FulfillmentController:
    def __init__(
        self,
        kube: Kube,
        step_seconds: float,
        workers: int = 4,
        default_ttl: int | None = None,
        default_deadline: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.kube: KubeClient = AsyncKube(kube, COMPONENT)
        self.status_writer = StatusWriter(PLURAL, COMPONENT, log)
        # The default duration of each step, for Fulfillments that set none.
        self.step_times = workflow.StepTimes(picking=step_seconds, packing=step_seconds)
        self.default_ttl = default_ttl  # retention of finished Fulfillments that serve no Order
        self.default_deadline = default_deadline  # activeDeadlineSeconds of Fulfillments that set none
        self.store: Store[str] = Store(summary=metrics.phase_of)
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            COMPONENT, self.reconcile, workers=workers, retry=retry, give_up=self._give_up
        )
        # At 0 from the start: an alert's increase() then counts the first miss too.
        metrics.DEADLINES_MISSED.labels(COMPONENT, "Fulfillment")
        metrics.count_phases(COMPONENT, "Fulfillment", self.store.summaries)

    def observe(self, event_type: str | None, body: Any) -> None:
        observe(self.store, self.queue, event_type, body)
        if listed(event_type):  # at start: its wake-up now, not once the listing reaches it
            look = self._next_look(body)
            if look is not None:
                self.queue.add_after(ObjectKey.of(body), look)

    def _next_look(self, body: dict[str, Any]) -> float | None:
        try:
            return workflow.next_look(_parse(body), utcnow(), self.step_times)
        except (ValidationError, KeyError, TypeError, ValueError):  # the reconcile reports what is wrong
            return None

    async def reconcile(self, key: ObjectKey) -> float | None:
        body = self.store.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        now = utcnow()
        try:
            observed = _parse(body)
        except ValidationError as exc:
            before = status_of(body, FulfillmentStatus)
            return await self._write(body, before, workflow.reject_spec(before, generation_of(body), exc, now))
        decision = workflow.decide(observed, now, self.step_times, self.default_ttl, self.default_deadline)
        if workflow.Expire() in decision.actions:
            return await self._expire(body)
        return await self._write(body, observed.status, decision)

    async def _give_up(self, key: ObjectKey, attempts: int, error: Exception) -> None:
        """The retry policy's attempts ran out: say so on the Fulfillment, if the API server lets us."""
        body = self.store.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        before = status_of(body, FulfillmentStatus)
        await self._write(body, before, workflow.gave_up(before, generation_of(body), str(error), attempts, utcnow()))

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
        self, body: dict[str, Any], before: FulfillmentStatus, decision: workflow.Decision
    ) -> float | None:
        """Write the decided status; only a written one is counted, logged and told in Events
        (posted on the object as written): every Event here tells of a change of the status."""
        write = await self.status_writer.write(self.kube, body, before, decision.status)
        if write.outcome is Outcome.CONFLICT:
            return write.retry_after
        if write.outcome is Outcome.GONE:
            return None
        if write.body is not None:  # written
            _count_transitions(decision)
            for event in decision.events:
                self.kube.event(write.body, event.type, event.reason, event.message)
            log_decision(
                log,
                "Fulfillment",
                ObjectKey.of(body),
                before.phase.value,
                decision.status.phase.value,
                transitions=decision.transitions,
                events=decision.events,
            )
        # Unchanged, written, or refused (StatusRejected: the next timed look tries again).
        return decision.requeue_after


def _parse(body: dict[str, Any]) -> workflow.ObservedFulfillment:
    meta = body["metadata"]
    return workflow.ObservedFulfillment(
        name=meta["name"],
        uid=meta["uid"],
        generation=generation_of(body),
        spec=FulfillmentSpec.model_validate(body.get("spec") or {}),
        status=FulfillmentStatus.model_validate(body.get("status") or {}),
        created_at=created_at(body),
    )


def _count_transitions(decision: workflow.Decision) -> None:
    for reason in decision.transitions:
        metrics.TRANSITIONS.labels(COMPONENT, reason).inc()
    for step, seconds in decision.completed_steps:
        metrics.STEP_SECONDS.labels(COMPONENT, step).observe(seconds)
    if decision.deadline_lateness is not None:
        metrics.DEADLINES_MISSED.labels(COMPONENT, "Fulfillment").inc()
        metrics.DEADLINE_LATENESS_SECONDS.labels(COMPONENT, "Fulfillment").observe(decision.deadline_lateness)


def build_registry(controller: FulfillmentController) -> kopf.OperatorRegistry:
    """Kopf only watches; everything else happens in the controller's reconcile."""
    registry = controller_registry(COMPONENT, controller.queue)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def fulfillment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.observe(type, body)

    return registry
