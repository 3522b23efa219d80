"""The order controller's Kopf wiring: read, decide, act, write, schedule.

It observes Fulfillments only through ``@kopf.on.event`` (list and watch; nothing is written to
them by Kopf), writes a Fulfillment's ``spec`` through the client (create, signal, delete) and
never its status. It never imports the fulfillment controller: the contract in ``orderflow.api``
is all the two share.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import kopf
from pydantic import ValidationError

from orderflow.api.common import GROUP, VERSION, utcnow
from orderflow.api.fulfillment import PLURAL as FULFILLMENTS
from orderflow.api.order import PLURAL as ORDERS
from orderflow.api.order import OrderSpec, OrderStatus
from orderflow.order import mirror, targets, workflow
from orderflow.order.link import TargetLink
from orderflow.runtime import metrics
from orderflow.runtime.cache import ObjectKey, Store
from orderflow.runtime.client import AsyncKube, Kube, KubeClient
from orderflow.runtime.logs import log_decision
from orderflow.runtime.pure.conditions import get_condition
from orderflow.runtime.pure.errors import ApiError, Conflict, Forbidden, NotFound
from orderflow.runtime.pure.events import Event
from orderflow.runtime.pure.reading import created_at, generation_of, status_of
from orderflow.runtime.retry import RetryLater, RetryPolicy
from orderflow.runtime.runner import controller_registry
from orderflow.runtime.status import CONFLICT_RETRY_SECONDS, StatusWriter
from orderflow.runtime.workqueue import WorkQueue, listed, observe

# What `orderflow run` reads here: ORDERS is the kind its readiness check lists.
__all__ = ["COMPONENT", "ORDERS", "OrderController", "build_registry"]

COMPONENT = "order-controller"
log = logging.getLogger("orderflow.order")


@dataclasses.dataclass(frozen=True)
class ActionResult:
    """What carrying out one action met: only facts the API server answered (the outcome, for
    the core to fold in with ``workflow.after``), and the Order as a metadata patch left it."""

    outcome: workflow.Outcome
    order_body: dict[str, Any] | None = None

    @property
    def goes_on(self) -> bool:
        """The next action may follow (nothing failed or changed under it)."""
        return not isinstance(self.outcome, workflow.ApiFailure | workflow.Interrupted)


@dataclasses.dataclass(frozen=True)
class There:
    """Where an Order's Fulfillment lives: what the core is told, its key there, the store its
    watch feeds and the client that writes it (None: none, the target is refused or not logged in)."""

    where: workflow.Where
    key: ObjectKey
    store: Store[None] | None
    client: KubeClient | None
    link: TargetLink | None = None


class Counted(NamedTuple):
    """What the metrics read of each cached Order, kept beside it (see Store)."""

    phase: str
    unacknowledged: bool

    @classmethod
    def of(cls, body: dict[str, Any]) -> Counted:
        return cls(metrics.phase_of(body), metrics.is_unacknowledged(body))


class OrderController:
    def __init__(
        self,
        kube: Kube,
        ack_timeout: float = 30.0,
        workers: int = 4,
        default_ttl: int | None = None,
        retry: RetryPolicy | None = None,
        declaration: targets.Declaration | None = None,
        secrets_namespace: str | None = None,
        allow_exec_kubeconfigs: bool = False,
        cluster: str | None = None,
    ) -> None:
        self.kube: KubeClient = AsyncKube(kube, COMPONENT)
        self.status_writer = StatusWriter(ORDERS, COMPONENT, log)
        self.ack_timeout = ack_timeout
        self.default_ttl = default_ttl  # retention of finished Orders that set none
        self.orders: Store[Counted] = Store(summary=Counted.of)
        self.fulfillments: Store[None] = Store(transform=mirror.fulfillment_as_read)
        # Targets: each its own list and watch, store and client (order.link).
        self.declaration = declaration or targets.Declaration()
        self.cluster = cluster
        self.links = {
            t.name: TargetLink(
                t,
                kube,
                secrets_namespace,
                allow_exec_kubeconfigs,
                on_change=functools.partial(self.observe_target_fulfillment, t.name),
                on_state=functools.partial(self.target_changed, t.name),
                component=COMPONENT,
            )
            for t in self.declaration.targets
        }
        self.users: dict[str, set[ObjectKey]] = {}  # target -> the Orders that name it
        self.expected: dict[tuple[str, str], ObjectKey] = {}  # (target, Fulfillment name) -> its Order
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            COMPONENT, self.reconcile, workers=workers, retry=retry, give_up=self._give_up
        )
        # At 0 from the start: an alert's increase() then counts the first miss too.
        metrics.DEADLINES_MISSED.labels(COMPONENT, "Order")
        metrics.count_phases(COMPONENT, "Order", lambda: (c.phase for c in self.orders.summaries()))
        metrics.count_unacknowledged(COMPONENT, lambda: (c.unacknowledged for c in self.orders.summaries()))

    # -- what the watches deliver ------------------------------------------------------------

    def observe_order(self, event_type: str | None, body: Any) -> None:
        target = (body.get("spec") or {}).get("target")
        if target and target in self.links:
            key = ObjectKey.of(body)
            users = self.users.setdefault(target, set())
            place = targets.place_of(self.declaration, key.namespace, target)
            name = (
                targets.fulfillment_name(key.namespace, key.name, place) if isinstance(place, targets.Place) else None
            )
            if event_type == "DELETED":
                users.discard(key)
                if name:
                    self.expected.pop((target, name), None)
            else:
                users.add(key)
                if name:
                    self.expected[(target, name)] = key
        observe(self.orders, self.queue, event_type, body)

    def observe_target_fulfillment(self, target: str, event_type: str | None, body: Any) -> None:
        """A Fulfillment of a target's (already in the link's store): it wakes the Order whose
        Fulfillment would have its name, ours or a stranger's (the Order must see it to say so)."""
        order = self.expected.get((target, body["metadata"]["name"]))
        if order is not None:
            self.queue.add(order, low_priority=listed(event_type))

    def target_changed(self, target: str) -> None:
        """The target became reachable, or not: every Order that names it decides again."""
        for key in list(self.users.get(target, ())):
            self.queue.add(key)

    def start_links(self) -> None:
        for link in self.links.values():
            link.start()

    def stop_links(self) -> None:
        for link in self.links.values():
            link.stop()

    def observe_fulfillment(self, event_type: str | None, body: Any) -> None:
        """Not ``observe``: a Fulfillment is not what this controller reconciles. Its event
        reconciles the Order it names, and its deletion leaves that Order's wake-ups alone.
        Every Fulfillment, not only those naming an Order: one made by hand with an Order's name
        takes that name, and the Order must see it to say so (and to never touch it)."""
        if event_type == "DELETED":
            key = ObjectKey.of(body)
            self.fulfillments.remove(key)
        else:
            key = self.fulfillments.put(body)
        ref = (body.get("spec") or {}).get("orderRef") or {}
        self.queue.add(ObjectKey(key.namespace, ref.get("name") or key.name), low_priority=listed(event_type))

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> float | None:
        body = self.orders.get(key)
        if body is None:
            return None
        now = utcnow()
        try:
            order = _parse(body)
        except ValidationError as exc:
            before = status_of(body, OrderStatus)
            decision = workflow.reject_spec(before, generation_of(body), exc, now)
            return await self._finish(body, before, decision, now)

        there = self._there(order)
        fbody = there.store.get(there.key) if there.store is not None else None
        reachable = there.client is not None and (there.where.link is None or there.where.link.reachable)
        if fbody is None and reachable and (order.status.fulfillment is not None or order.deleting):
            # The watch may not have delivered it yet (just started, or just created): ask, and use
            # the answer for this reconcile only (the store is fed by the watch alone).
            fbody = await self._find_fulfillment(there)
        fulfillment = mirror.FulfillmentAsRead.from_body(fbody) if fbody else None
        decision = workflow.decide(order, fulfillment, now, self.ack_timeout, self.default_ttl, there.where)
        outcomes: list[workflow.Outcome] = []
        for action in decision.actions:
            result = await self._act(action, body, order, there)
            body = result.order_body or body
            outcomes.append(result.outcome)
            if not result.goes_on:
                break
        decision = workflow.after(order, decision, outcomes, now)
        if decision.retry is not None:
            stalled = get_condition(decision.status.conditions, "Stalled") if decision.status else None
            if not self.queue.exhausted(key):  # given up already: the report says so, keep it
                await self._finish(body, order.status, decision, now)
            raise RetryLater(decision.retry, stalled.message if stalled else decision.retry)
        return await self._finish(body, order.status, decision, now)

    async def _finish(
        self,
        body: dict[str, Any],
        before: OrderStatus,
        decision: workflow.Decision,
        now: datetime.datetime,
    ) -> float | None:
        """Write the decided status, then post its Events: an Event for a state never written
        would tell of something that did not happen. Unlike the fulfillment controller's, they
        are posted also when the write changed nothing or could not be made (a 404, a refused
        status): an Order's Events tell of actions too (a create, a signal), which happened."""
        key, done = ObjectKey.of(body), decision.done
        if decision.status is None:
            self._report(key, before, None, done, ())
            return decision.requeue_after
        write = await self.status_writer.write(self.kube, body, before, decision.status)
        if write.retry_after is not None:
            self._report(key, before, None, done, ())  # the actions happened; the status comes again
            return write.retry_after
        self._observe_ack(before, decision.status, now)
        for event in decision.events:
            self.kube.event(body, event.type, event.reason, event.message)
        self._report(key, before, decision.status if write.written else None, done, decision.events)
        return decision.requeue_after

    async def _give_up(self, key: ObjectKey, attempts: int, error: Exception) -> None:
        """The retry policy's attempts ran out: say so on the Order (Stalled, the count, the error)."""
        body = self.orders.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        reason, message = (
            (error.reason, error.message) if isinstance(error, RetryLater) else ("RetriesExhausted", str(error))
        )
        before = status_of(body, OrderStatus)
        decision = workflow.gave_up(before, generation_of(body), reason, message, attempts, utcnow())
        await self._finish(body, before, decision, utcnow())

    def _report(
        self,
        key: ObjectKey,
        before: OrderStatus,
        written: OrderStatus | None,
        done: Sequence[str],
        events: Sequence[Event],
    ) -> None:
        """Count a phase change that was written, and log what the decision changed."""
        after = written.phase if written is not None else before.phase
        if after is not before.phase:
            metrics.TRANSITIONS.labels(COMPONENT, after.value).inc()
        if written is not None and before.deadline_exceeded_at is None and written.deadline_exceeded_at is not None:
            metrics.DEADLINES_MISSED.labels(COMPONENT, "Order").inc()
            if written.due_at is not None:
                lateness = (written.deadline_exceeded_at - written.due_at).total_seconds()
                metrics.DEADLINE_LATENESS_SECONDS.labels(COMPONENT, "Order").observe(lateness)
        log_decision(log, "Order", key, before.phase.value, after.value, actions=done, events=events)

    def _there(self, order: workflow.ObservedOrder) -> There:
        """Where the Order's Fulfillment lives (spec.target), and how to read and write it there."""
        place = targets.place_of(self.declaration, order.namespace, order.spec.target)
        if isinstance(place, targets.Refusal):
            return There(workflow.Where(place=place), ObjectKey(order.namespace, order.name), None, None)
        key = ObjectKey(place.namespace, targets.fulfillment_name(order.namespace, order.name, place))
        if place.target is None:
            return There(workflow.Where(place=place, cluster=self.cluster), key, self.fulfillments, self.kube)
        link = self.links[place.target.name]
        where = workflow.Where(place=place, link=link.state, cluster=self.cluster)
        return There(where, key, link.store, link.client, link)

    async def _find_fulfillment(self, there: There) -> dict[str, Any] | None:
        assert there.client is not None
        try:
            return await there.client.find(FULFILLMENTS, there.key.namespace, there.key.name)
        except Forbidden:
            return None

    async def _act(
        self, action: workflow.Action, body: dict[str, Any], order: workflow.ObservedOrder, there: There
    ) -> ActionResult:
        name = order.name
        fns, fname = there.key.namespace, there.key.name
        fulfillments = there.client or self.kube  # actions on a Fulfillment are decided only with a client
        try:
            if isinstance(action, workflow.AddFinalizer | workflow.RemoveFinalizer):
                return await self._set_finalizer(body, isinstance(action, workflow.AddFinalizer))
            if isinstance(action, workflow.CreateFulfillment):
                try:
                    created = await fulfillments.create(FULFILLMENTS, fns, action.body)
                except Conflict as exc:
                    if not exc.already_exists:
                        raise
                    # There already (ours from an earlier attempt, or someone else's): the watch
                    # brings it, and the next reconcile decides on what is there.
                    return ActionResult(workflow.Interrupted(CONFLICT_RETRY_SECONDS))
                return ActionResult(workflow.Created(str(created["metadata"]["uid"])))
            if isinstance(action, workflow.SendSignals):
                try:
                    updated = await fulfillments.patch(FULFILLMENTS, fns, fname, {"spec": action.spec_patch})
                except NotFound:  # deleted meanwhile: the watch tells, and the next reconcile reports it
                    return ActionResult(workflow.Interrupted(CONFLICT_RETRY_SECONDS))
                return ActionResult(workflow.Signalled(int(updated["metadata"]["generation"])))
            if isinstance(action, workflow.DeleteFulfillment):
                try:  # only the object the decision saw: a replacement of that name is not ours
                    await fulfillments.delete(FULFILLMENTS, fns, fname, None, action.uid)
                except Conflict:
                    return ActionResult(workflow.Interrupted(CONFLICT_RETRY_SECONDS))
                return ActionResult(workflow.Done())
            if isinstance(action, workflow.Expire):
                try:  # only the version the decision saw: a changed Order is decided again
                    await self.kube.delete(ORDERS, order.namespace, name, body["metadata"]["resourceVersion"])
                except Conflict:
                    return ActionResult(workflow.Interrupted(CONFLICT_RETRY_SECONDS))
                return ActionResult(workflow.Done())  # the watch brings the deletion, and the finalizer's turn
        except Conflict:
            raise
        except ApiError as exc:
            if exc.code == 401 and there.link is not None:
                there.link.refused_login()  # then raise: retried, with the new login
            if exc.code in (400, 403, 404, 422):  # what retrying now cannot mend: the core reports it
                return ActionResult(workflow.ApiFailure(exc.code, exc.message))
            raise  # 429, 5xx: the work queue retries with backoff
        raise TypeError(f"unknown action {action!r}")

    async def _set_finalizer(self, body: dict[str, Any], present: bool) -> ActionResult:
        meta = body["metadata"]
        finalizers = [f for f in meta.get("finalizers", []) if f != workflow.FINALIZER]
        if present:
            finalizers.append(workflow.FINALIZER)
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        try:
            updated = await self.kube.patch(ORDERS, meta["namespace"], meta["name"], patch)
        except Conflict:
            metrics.CONFLICTS.labels(COMPONENT).inc()
            return ActionResult(workflow.Interrupted(CONFLICT_RETRY_SECONDS))
        except NotFound:
            return ActionResult(workflow.Interrupted(CONFLICT_RETRY_SECONDS))
        return ActionResult(workflow.Done(), order_body=updated)

    def _observe_ack(self, before: OrderStatus, after: OrderStatus, now: datetime.datetime) -> None:
        was = get_condition(before.conditions, "SignalsAcknowledged")
        acked = get_condition(after.conditions, "SignalsAcknowledged")
        if acked and acked.status == "True" and (was is None or was.status != "True") and after.signals:
            sent = after.signals.sent_at
            if sent:
                metrics.SIGNAL_ACK_SECONDS.labels(COMPONENT).observe(max(0.0, (now - sent).total_seconds()))


def _parse(body: dict[str, Any]) -> workflow.ObservedOrder:
    meta = body["metadata"]
    return workflow.ObservedOrder(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        generation=generation_of(body),
        spec=OrderSpec.model_validate(body.get("spec") or {}),
        status=status_of(body, OrderStatus),
        deleting=bool(meta.get("deletionTimestamp")),
        has_finalizer=workflow.FINALIZER in meta.get("finalizers", []),
        created_at=created_at(body),
    )


def build_registry(controller: OrderController) -> kopf.OperatorRegistry:
    """Kopf only watches; everything else happens in the controller's reconcile."""
    registry = controller_registry(COMPONENT, controller.queue)

    @kopf.on.startup(registry=registry)
    async def links(**_: Any) -> None:
        controller.start_links()

    @kopf.on.cleanup(registry=registry)
    async def unlink(**_: Any) -> None:
        controller.stop_links()

    @kopf.on.event(GROUP, VERSION, ORDERS, registry=registry)
    async def order_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.observe_order(type, body)

    @kopf.on.event(GROUP, VERSION, FULFILLMENTS, registry=registry)
    async def fulfillment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.observe_fulfillment(type, body)

    return registry
