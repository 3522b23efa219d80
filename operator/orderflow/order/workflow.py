"""The order workflow as a pure function: the Order, its Fulfillment as last seen, the time -> a decision.

Validate -> create the Fulfillment -> start it -> follow its status -> Completed when shipped.
The Fulfillment is known only through its contract: its ``status`` (the query) is mirrored into
the Order's status; the Order's wishes reach it only as ``spec`` fields (the signals), and only
when the Order's own desired value changes from what was last sent. A person's direct patch on
the Fulfillment therefore stands until the Order asks for something else.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Sequence
from typing import Any

from orderflow.api.common import API_VERSION, ConditionStatus, ShippingAddress, due_at, seconds_until_expiry
from orderflow.api.evidence import unbelievable
from orderflow.api.fulfillment import KIND as FULFILLMENT_KIND
from orderflow.api.fulfillment import FulfillmentPhase, FulfillmentStatus
from orderflow.api.order import (
    DeletionPolicy,
    FulfillmentState,
    OrderPhase,
    OrderSpec,
    OrderStatus,
    SentSignals,
)
from orderflow.order.targets import Place, Refusal
from orderflow.order.targets import fulfillment_name as name_in
from orderflow.runtime.conditions import (
    NOT_PAUSED,
    Cond,
    describe_error,
    get_condition,
    newly,
    set_condition,
    set_kstatus,
)
from orderflow.runtime.events import Event
from orderflow.runtime.reading import generation_of, lenient, status_of

FINALIZER = "order-controller.orderflow.dev/deletion-policy"
ORDER_LABEL = "orderflow.dev/order"
MAX_UNITS_PER_ORDER = 1_000
T, F = ConditionStatus.TRUE, ConditionStatus.FALSE

TOO_LATE = "the cancel came too late: the parcel had already shipped"


@dataclasses.dataclass(frozen=True)
class ObservedOrder:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: OrderSpec
    status: OrderStatus
    deleting: bool = False
    has_finalizer: bool = True
    created_at: datetime.datetime | None = None  # metadata.creationTimestamp: the deadline's start


@dataclasses.dataclass(frozen=True)
class Link:
    """How the order controller last found a target's API server: its list and watch of the
    target's Fulfillments. None for the Order's own namespace, which Kopf watches."""

    reachable: bool
    reason: str = "Reachable"  # else Unreachable, Forbidden, KubeconfigRefused
    message: str = ""
    last_reached: datetime.datetime | None = None

    @property
    def needs_a_person(self) -> bool:
        """Down for a reason waiting will not mend: a permission, a refused kubeconfig."""
        return not self.reachable and self.reason != "Unreachable"


@dataclasses.dataclass(frozen=True)
class FulfillmentAsRead:
    """A Fulfillment as its contract shows it: identity, generation, the signals in spec, status."""

    name: str
    uid: str
    generation: int
    order_uid: str | None
    paused: bool
    cancelled: bool
    shipping_address: ShippingAddress | None  # None: missing, or not readable by this version
    status: FulfillmentStatus
    ttl_seconds_after_finished: int | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> FulfillmentAsRead:
        meta, spec = body["metadata"], body.get("spec") or {}
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=generation_of(body),
            order_uid=(spec.get("orderRef") or {}).get("uid"),
            paused=bool(spec.get("paused", False)),
            cancelled=bool(spec.get("cancelled", False)),
            shipping_address=lenient(ShippingAddress, spec.get("shippingAddress") or {}, None),
            status=status_of(body, FulfillmentStatus),  # a newer or broken status: not reported yet
            ttl_seconds_after_finished=spec.get("ttlSecondsAfterFinished"),
        )


def fulfillment_as_read(body: dict[str, Any]) -> dict[str, Any]:
    """A Fulfillment as this controller's decisions read it (FulfillmentAsRead.from_body): its
    history, its other conditions and its items and customer are never read here, so the order
    controller's cache does not keep them (less memory per Fulfillment, and less personal data)."""
    spec = {k: v for k, v in (body.get("spec") or {}).items() if k not in ("items", "customerEmail")}
    status = dict(body.get("status") or {})
    status["history"] = (status.get("history") or [])[-1:]  # the newest entry: a Shipped status's evidence
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") == "Accepted"]
    return {**body, "spec": spec, "status": status}


# -- actions the controller carries out, in order ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class AddFinalizer:
    pass


@dataclasses.dataclass(frozen=True)
class CreateFulfillment:
    body: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SendSignals:
    spec_patch: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DeleteFulfillment:
    uid: str  # only this object: never a same-name replacement the cache has not shown yet


@dataclasses.dataclass(frozen=True)
class RemoveFinalizer:
    pass


@dataclasses.dataclass(frozen=True)
class Expire:
    """Finished, and its time to live after finishing is over: delete the Order (as Job's
    ttlSecondsAfterFinished). The fulfillment core decides a Fulfillment's expiry the same way."""


Action = AddFinalizer | CreateFulfillment | SendSignals | DeleteFulfillment | RemoveFinalizer | Expire


@dataclasses.dataclass(frozen=True)
class Decision:
    status: OrderStatus | None  # None: leave status alone (the Order is being deleted, or decided again)
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None
    # A failure that may mend by itself (a permission granted, a CRD installed), reported in the
    # status: tried again as the controller's retry policy says, under this reason.
    retry: str | None = None
    fulfillment: str = ""  # the name of the Fulfillment the actions are about (for what they did)
    done: tuple[str, ...] = ()  # what the actions carried out did, in words for the log (``after``)


# -- what an action met, as the controller tells it (``after`` folds it into the decision) ----


@dataclasses.dataclass(frozen=True)
class ApiFailure:
    """An API error an action met that retrying at once cannot fix: the server's code and words."""

    code: int
    message: str


@dataclasses.dataclass(frozen=True)
class Done:
    """Carried out; nothing to record."""


@dataclasses.dataclass(frozen=True)
class Created:
    uid: str  # the uid of the Fulfillment the create made


@dataclasses.dataclass(frozen=True)
class Signalled:
    generation: int  # the Fulfillment generation the signal produced


@dataclasses.dataclass(frozen=True)
class Interrupted:
    """The object changed or went meanwhile (a conflict, already there, gone): the watch brings
    what is there now, and the Order is decided again on it after ``retry_after`` at the latest."""

    retry_after: float


Outcome = Done | Created | Signalled | Interrupted | ApiFailure


def fulfillment_name(order_name: str) -> str:
    """In the Order's own namespace: deterministic, so a retried create finds the first one
    (AlreadyExists is success). In a target: ``targets.fulfillment_name``."""
    return order_name


LABEL_VALUE_MAX = 63


def label_value(name: str) -> str:
    """The Order's name as a label value, valid for every valid Order name: names run to 253
    characters, label values to 63, so a long name keeps its start and gains a hash of the whole
    (``kubectl get fulfillments -l orderflow.dev/order=...`` still finds short names as typed)."""
    if len(name) <= LABEL_VALUE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: LABEL_VALUE_MAX - len(digest) - 1].rstrip('.-_')}-{digest}"


def validate(spec: OrderSpec) -> list[str]:
    """Rules the schema cannot express; each message says what to change."""
    problems = []
    units = sum(item.quantity for item in spec.items)
    if units > MAX_UNITS_PER_ORDER:
        problems.append(
            f"the order has {units} units in all; at most {MAX_UNITS_PER_ORDER} fit one fulfillment, "
            "split it into several orders"
        )
    return problems


def fulfillment_body(order: ObservedOrder, place: Place | None = None, cluster: str | None = None) -> dict[str, Any]:
    spec = order.spec
    place = place or Place(order.namespace)
    ref: dict[str, Any] = {"name": order.name, "uid": order.uid}
    if place.target is not None:
        ref["namespace"] = order.namespace  # a target is shared: say whose it is, for people
    if cluster:
        ref["cluster"] = cluster
    fspec: dict[str, Any] = {
        "orderRef": ref,
        "items": [item.wire() for item in spec.items],
        "customerEmail": spec.customer_email,
        "shippingAddress": spec.shipping_address.wire(),
        "started": True,
        "paused": spec.paused,
        "cancelled": spec.cancelled,
    }
    if spec.step_duration_seconds:
        fspec["stepDurationSeconds"] = spec.step_duration_seconds.wire()
    return {
        "apiVersion": API_VERSION,
        "kind": FULFILLMENT_KIND,
        "metadata": {
            "name": name_in(order.namespace, order.name, place),
            "namespace": place.namespace,
            "labels": {ORDER_LABEL: label_value(order.name)},
            "annotations": {"orderflow.dev/order-uid": order.uid},
        },
        "spec": fspec,
    }


@dataclasses.dataclass(frozen=True)
class Where:
    """Where the Order's Fulfillment lives, as the controller resolved ``spec.target``, and how
    the link to it is. The default: the Order's own namespace, watched by Kopf."""

    place: Place | Refusal | None = None  # None: the Order's own namespace
    link: Link | None = None  # None: always reachable (the Order's own namespace)
    cluster: str | None = None  # this cluster's name (--cluster-name), for orderRef


HERE = Where()


def decide(
    order: ObservedOrder,
    fulfillment: FulfillmentAsRead | None,
    now: datetime.datetime,
    ack_timeout: float,
    default_ttl: int | None = None,
    where: Where = HERE,
) -> Decision:
    """``fulfillment`` is None only when it is known not to exist (the caller has checked).
    ``default_ttl``: the controller's retention for Orders that set none."""
    ttl = order.spec.ttl_seconds_after_finished if order.spec.ttl_seconds_after_finished is not None else default_ttl
    if order.deleting:
        decision = _delete(order, fulfillment, ttl, where, now)
    else:
        decision = _retain(_decide(order, fulfillment, now, ack_timeout, where), ttl, now)
    place = where.place or Place(order.namespace)
    name = name_in(order.namespace, order.name, place) if isinstance(place, Place) else order.name
    return dataclasses.replace(decision, fulfillment=name)


def _retain(decision: Decision, ttl: int | None, now: datetime.datetime) -> Decision:
    """A finished Order lives ``ttl`` seconds after it finished, then is deleted (its finalizer
    then applies the deletion policy to its Fulfillment)."""
    status = decision.status
    left = seconds_until_expiry(status.completed_at if status and status.phase.terminal else None, ttl, now)
    if left is None:
        return decision
    if left <= 0:
        return dataclasses.replace(decision, actions=(*decision.actions, Expire()))
    requeue = left if decision.requeue_after is None else min(left, decision.requeue_after)
    return dataclasses.replace(decision, requeue_after=requeue)


def _decide(
    order: ObservedOrder,
    fulfillment: FulfillmentAsRead | None,
    now: datetime.datetime,
    ack_timeout: float,
    where: Where = HERE,
) -> Decision:
    actions: list[Action] = [] if order.has_finalizer else [AddFinalizer()]
    status = order.status.copied()
    events: list[Event] = []
    gen = order.generation
    place = where.place or Place(order.namespace)
    if isinstance(place, Refusal):  # nothing is created anywhere, nothing is touched
        if status.phase.terminal:
            return _done(order, status, actions, events)
        return _stall(order, status, place.reason, place.message, now, actions, events)
    past_due = _deadline(order, status, fulfillment, now, events)
    if where.link is not None:
        _say_link(order, status, place, where.link, now, events)
        if not where.link.reachable and not status.phase.terminal:
            return _unreachable(order, status, place, where.link, now, actions, events)

    if status.fulfillment is None:  # not created yet
        if past_due and not order.spec.cancelled and (fulfillment is None or not is_ours(order, None, fulfillment)):
            return _deadline_failed(order, status, actions, events, now, "no Fulfillment was started")
        problems = validate(order.spec)
        if problems:
            message = "; ".join(problems)
            status.phase = OrderPhase.INVALID
            _conditions(status, gen, now, ready=(F, "InvalidSpec", message), stalled=(T, "InvalidSpec", message))
            if newly(order.status.conditions, "Stalled", T, "InvalidSpec"):
                events.append(Event("Warning", "InvalidSpec", message))
            return _done(order, status, actions, events)
        if order.spec.cancelled:
            status.phase = OrderPhase.CANCELLED
            status.completed_at = _finished_at(order.status, status.phase, now)
            _conditions(status, gen, now, ready=(T, "Cancelled", "cancelled before fulfillment started, as asked"))
            if order.status.phase is not OrderPhase.CANCELLED:
                events.append(Event("Normal", "Cancelled", "cancelled before fulfillment started"))
            return _done(order, status, actions, events)
        if fulfillment is None:
            body = fulfillment_body(order, place, where.cluster)
            actions.append(CreateFulfillment(body))
            status.fulfillment = FulfillmentState(
                name=body["metadata"]["name"],
                namespace=place.namespace if place.target else None,
                target=place.name,
                phase=FulfillmentPhase.PENDING.value,
            )
            status.signals = SentSignals(
                paused=order.spec.paused,
                cancelled=order.spec.cancelled,
                shipping_address=order.spec.shipping_address,
                generation=1,
                sent_at=now,
            )
            status.phase = OrderPhase.FULFILLING
            events.append(
                Event("Normal", "FulfillmentCreated", f"created and started Fulfillment {body['metadata']['name']}")
            )
            _conditions(
                status,
                gen,
                now,
                ready=(F, "Fulfilling", "fulfillment started"),
                reconciling=(T, "Fulfilling", "waiting for the fulfillment to report"),
            )
            _acknowledgement(status, None, gen, now, ack_timeout, events)
            return _done(order, status, actions, events, requeue_after=ack_timeout)
        if not is_ours(order, None, fulfillment):
            message = (
                f"a Fulfillment named {fulfillment.name} already exists and belongs to "
                f"{'another order' if fulfillment.order_uid else 'no order'}; "
                "rename the Order or remove that Fulfillment"
            )
            return _stall(order, status, "FulfillmentNameTaken", message, now, actions, events)
        # Created earlier by us (e.g. before a restart lost the status write): adopt it.
        status.fulfillment = FulfillmentState(
            name=fulfillment.name,
            namespace=place.namespace if place.target else None,
            target=place.name,
            uid=fulfillment.uid,
        )
        status.signals = SentSignals(
            paused=fulfillment.paused,
            cancelled=fulfillment.cancelled,
            shipping_address=fulfillment.shipping_address,
            generation=fulfillment.generation,
            sent_at=now,
        )

    assert status.fulfillment is not None
    if past_due and (fulfillment is None or not is_ours(order, status.fulfillment, fulfillment)):
        if status.phase.terminal:
            return _done(order, status, actions, events)
        return _deadline_failed(order, status, actions, events, now, f"Fulfillment {status.fulfillment.name} is gone")
    if fulfillment is None:
        return _missing(order, status, actions, events, now)
    if not is_ours(order, status.fulfillment, fulfillment):
        return _not_ours(order, status, fulfillment, actions, events, now)

    # Signals: only what the Order's own desired value changed since it was last sent.
    signals = status.signals or SentSignals()
    patch: dict[str, Any] = {}
    if order.spec.paused != signals.paused:
        patch["paused"] = order.spec.paused
    terminal = fulfillment.status.phase.terminal
    # Past its deadline, an order cancels a Fulfillment still at work (one that has finished has
    # nothing left to cancel: a parcel that shipped first is shipped).
    cancel = order.spec.cancelled or (past_due and not terminal)
    if cancel and not signals.cancelled:
        patch["cancelled"] = True
    if order.spec.shipping_address != signals.shipping_address:
        patch["shippingAddress"] = order.spec.shipping_address.wire()
    if patch and not (terminal and set(patch) == {"paused"}):
        actions.append(SendSignals(patch))
        status.signals = SentSignals(
            paused=order.spec.paused,
            cancelled=cancel or signals.cancelled,
            shipping_address=order.spec.shipping_address,
            generation=None,  # filled in from the Fulfillment's new generation once written
            sent_at=now,
        )
        sent = ", ".join(_describe(k, v) for k, v in sorted(patch.items()))
        events.append(Event("Normal", "SignalSent", f"sent {sent} to Fulfillment {fulfillment.name}"))

    _mirror(status, fulfillment, order.spec, gen, now, events, order.status)
    requeue = _acknowledgement(status, fulfillment, gen, now, ack_timeout, events)
    _say_unacknowledged(status, gen, now)
    if status.due_at is not None and not past_due and not status.phase.terminal:
        until_due = (status.due_at - now).total_seconds()
        requeue = until_due if requeue is None else min(requeue, until_due)
    return _done(order, status, actions, events, requeue_after=requeue)


def _deadline(
    order: ObservedOrder,
    status: OrderStatus,
    fulfillment: FulfillmentAsRead | None,
    now: datetime.datetime,
    events: list[Event],
) -> bool:
    """Whether the order is past its deadline, unfinished: the first decision to find it so records
    when (``deadlineExceededAt``, final) and warns once. The due time follows the spec until then
    (a raised deadline moves it), and is derived from the creation time the API server recorded,
    so a restarted controller finds the same one, and acts on it once. A cancel the customer asked
    for comes first: the order ends Cancelled, as asked, whatever the clock says."""
    if status.phase.terminal or (order.spec.cancelled and status.deadline_exceeded_at is None):
        return False
    if status.deadline_exceeded_at is not None:
        return True
    status.due_at = due_at(order.created_at, order.spec.active_deadline_seconds)
    if status.due_at is None or status.due_at > now:
        return False
    shipped = fulfillment is not None and fulfillment.status.phase is FulfillmentPhase.SHIPPED
    if shipped and fulfillment and unbelievable(fulfillment.status, fulfillment.uid, fulfillment.cancelled) is None:
        return False  # shipped first: Completed, whenever the order controller gets to see it
    status.deadline_exceeded_at = now
    what = f"cancelling Fulfillment {status.fulfillment.name}" if status.fulfillment else "no Fulfillment was started"
    events.append(
        Event("Warning", "DeadlineExceeded", f"the order was due at {_when(status.due_at)} and has not shipped; {what}")
    )
    return True


def _deadline_failed(
    order: ObservedOrder,
    status: OrderStatus,
    actions: list[Action],
    events: list[Event],
    now: datetime.datetime,
    why: str,
) -> Decision:
    """Past its deadline with no Fulfillment of its own to cancel: Failed at once."""
    assert status.due_at is not None
    message = f"the order was due at {_when(status.due_at)}; {why}"
    status.phase = OrderPhase.FAILED
    status.completed_at = _finished_at(order.status, OrderPhase.FAILED, now)
    _conditions(
        status, order.generation, now, ready=(F, "DeadlineExceeded", message), stalled=(T, "DeadlineExceeded", message)
    )
    events.append(Event("Warning", "Failed", f"order failed: {message}"))
    return _done(order, status, actions, events)


def _when(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def after(order: ObservedOrder, decision: Decision, outcomes: Sequence[Outcome], now: datetime.datetime) -> Decision:
    """The decision as its actions' outcomes leave it: the one place where what an action met
    reaches the status. ``outcomes`` answer ``decision.actions`` in order, up to the first that
    stopped the rest (a failure, an interruption). A created Fulfillment's uid and a signal's
    generation are recorded; a failure ends on the Order (``action_failed``); an interruption
    leaves the status to the next decision. ``done`` says, for the log, what was carried out."""
    status = decision.status
    done: list[str] = []
    for action, outcome in zip(decision.actions, outcomes, strict=False):
        if isinstance(outcome, ApiFailure):
            failed = action_failed(order, order.status, action, outcome, now, decision.fulfillment or None)
            return dataclasses.replace(failed, done=tuple(done))
        if isinstance(outcome, Interrupted):
            return Decision(status=None, requeue_after=outcome.retry_after, done=tuple(done))
        done.append(describe_action(action, decision.fulfillment))
        if isinstance(outcome, Created) and status is not None:
            status = with_created(status, outcome.uid)
        elif isinstance(outcome, Signalled) and status is not None:
            status = with_signal_generation(status, outcome.generation)
    return dataclasses.replace(decision, status=status, done=tuple(done))


def describe_action(action: Action, name: str) -> str:
    """What carrying out ``action`` on the Fulfillment ``name`` did, in a few words for the
    controller's log: its name and the signals' values, never an address (a changed one is only
    "changed")."""
    if isinstance(action, AddFinalizer):
        return "added finalizer"
    if isinstance(action, RemoveFinalizer):
        return "removed finalizer"
    if isinstance(action, CreateFulfillment):
        return f"created Fulfillment {action.body['metadata']['name']}"
    if isinstance(action, SendSignals):
        return f"sent signals {', '.join(_describe(k, v) for k, v in sorted(action.spec_patch.items()))}"
    if isinstance(action, DeleteFulfillment):
        return f"deleted Fulfillment {name}"
    if isinstance(action, Expire):
        return "deleted the Order (its time to live after finishing is over)"
    return type(action).__name__


_VERBS = {CreateFulfillment: "create", SendSignals: "signal", DeleteFulfillment: "delete"}


def action_failed(
    order: ObservedOrder,
    before: OrderStatus,
    action: Action,
    failure: ApiFailure,
    now: datetime.datetime,
    name: str | None = None,
) -> Decision:
    """Every error the controller cannot retry its way out of at once ends on the Order — a
    condition and one Warning Event with the server's message — never only in a log. A missing API
    or a missing permission may come back by itself (a chart installed, RBAC fixed): tried again as
    the retry policy says. A refusal of what was sent (400, 422) will not: it waits for a change to
    the Order."""
    verb = _VERBS.get(type(action), "update")
    name = name or fulfillment_name(order.name)
    retry: str | None
    if failure.code == 404 and isinstance(action, CreateFulfillment):
        reason = retry = "FulfillmentAPIUnavailable"
        message = "the Fulfillment API (fulfillments.orderflow.dev) is not installed; install its CRD"
    elif failure.code == 403:
        reason = retry = "FulfillmentForbidden"
        message = f"not allowed to {verb} Fulfillments: {failure.message}"
    else:
        reason, retry = "FulfillmentRejected", None
        message = f"the API server refused to {verb} Fulfillment {name} ({failure.code}): {failure.message}"
    events = (Event("Warning", reason, message),) if newly(before.conditions, "Stalled", T, reason) else ()
    return Decision(status=blocked(before, order.generation, reason, message, now), events=events, retry=retry)


def gave_up(
    before: OrderStatus, generation: int, reason: str, error: str, attempts: int, now: datetime.datetime
) -> Decision:
    """The retry policy's attempts ran out: Stalled with the last error and the count, until a
    change to the Order's spec starts a fresh round."""
    message = (
        f"gave up after {attempts} attempts in a row: {error}; "
        "a change to the Order's spec (or a restart of the order controller) tries again"
    )
    events = (Event("Warning", "RetriesExhausted", message),)
    return Decision(status=blocked(before, generation, reason, message, now), events=events)


def reject_spec(status: OrderStatus, generation: int, error: Exception, now: datetime.datetime) -> Decision:
    """A spec the schema let through but this controller cannot read (an older CRD, say)."""
    message = f"spec cannot be used: {describe_error(error)}"
    events = (
        (Event("Warning", "InvalidSpec", message),) if newly(status.conditions, "Stalled", T, "InvalidSpec") else ()
    )
    return Decision(status=blocked(status, generation, "InvalidSpec", message, now), events=events)


def is_ours(order: ObservedOrder, recorded: FulfillmentState | None, f: FulfillmentAsRead) -> bool:
    """Identity, not name: the Fulfillment names this Order's uid, and is the very object this
    Order recorded (its uid, which the API server gives and nobody can choose)."""
    if f.order_uid != order.uid:
        return False
    return recorded is None or recorded.uid is None or recorded.uid == f.uid


def with_created(status: OrderStatus, uid: str) -> OrderStatus:
    """Record the uid of the Fulfillment just created: from now on only that object is ours."""
    new = status.model_copy(deep=True)
    if new.fulfillment:
        new.fulfillment.uid = uid
    return new


def with_signal_generation(status: OrderStatus, generation: int) -> OrderStatus:
    """Record the Fulfillment generation a signal produced: its acknowledgement is reaching it."""
    new = status.model_copy(deep=True)
    if new.signals:
        new.signals.generation = generation
    return new


def blocked(before: OrderStatus, generation: int, reason: str, message: str, now: datetime.datetime) -> OrderStatus:
    """The order cannot go on (Fulfillment API missing or forbidden, name taken, unreadable spec)."""
    status = before.model_copy(deep=True)
    _conditions(status, generation, now, ready=(F, reason, message), stalled=(T, reason, message))
    status.observed_generation = generation
    return status


def _delete(
    order: ObservedOrder, fulfillment: FulfillmentAsRead | None, ttl: int | None, where: Where, now: datetime.datetime
) -> Decision:
    if not order.has_finalizer:
        return Decision(status=None)
    actions: list[Action] = []
    policy = order.spec.deletion_policy
    link = where.link
    if link is not None and not link.reachable and policy is not DeletionPolicy.ORPHAN and order.status.fulfillment:
        # The policy is carried out on the Fulfillment, which cannot be reached: wait, and say so.
        status = order.status.copied()
        target = order.status.fulfillment.target or "its target"
        message = (
            f"deletionPolicy {policy.value} waits for target {target} to be reachable again "
            f"({link.message}); set deletionPolicy Orphan to let go at once"
        )
        _conditions(status, order.generation, now, ready=(F, "DeletionWaitsForTarget", message))
        set_condition(status.conditions, "TargetReachable", F, link.reason, link.message, order.generation, now)
        return Decision(status=status)
    if fulfillment is not None and is_ours(order, order.status.fulfillment, fulfillment):
        if policy is DeletionPolicy.CANCEL:
            # Cancel, and let it finish its own lifecycle: with retention, that ends the same
            # time after its own end (never before this Order is gone: it is set only now).
            signals: dict[str, Any] = {}
            if not fulfillment.cancelled and not fulfillment.status.phase.terminal:
                signals["cancelled"] = True
            if ttl is not None and fulfillment.ttl_seconds_after_finished is None:
                signals["ttlSecondsAfterFinished"] = ttl
            if signals:
                actions.append(SendSignals(signals))
        elif policy is DeletionPolicy.DELETE:
            actions.append(DeleteFulfillment(fulfillment.uid))
    actions.append(RemoveFinalizer())
    return Decision(status=None, actions=tuple(actions))


def _say_link(
    order: ObservedOrder, status: OrderStatus, place: Place, link: Link, now: datetime.datetime, events: list[Event]
) -> None:
    """TargetReachable: the order controller's list and watch of the target's Fulfillments."""
    where = f"target {place.name} (namespace {place.namespace})"
    if link.reachable:
        set_condition(
            status.conditions, "TargetReachable", T, "Reachable", f"{where} is reachable", order.generation, now
        )
        return
    since = (
        f"last reached {_when(link.last_reached)}" if link.last_reached else "not reached since the controller started"
    )
    message = f"{where} cannot be reached ({since}): {link.message}"
    if newly(order.status.conditions, "TargetReachable", F, link.reason):
        events.append(Event("Warning", "TargetUnreachable" if link.reason == "Unreachable" else link.reason, message))
    set_condition(status.conditions, "TargetReachable", F, link.reason, message, order.generation, now)


def _unreachable(
    order: ObservedOrder,
    status: OrderStatus,
    place: Place,
    link: Link,
    now: datetime.datetime,
    actions: list[Action],
    events: list[Event],
) -> Decision:
    """A link that is down is a normal state: keep the last known status of the Fulfillment, send
    nothing (the signals wait in spec, and go once it is reachable: they are level-triggered), and
    say so. Waiting mends an outage; a refused permission or kubeconfig needs a person: Stalled."""
    reached = get_condition(status.conditions, "TargetReachable")
    message = (reached.message if reached else link.message) + "; signals are sent once it is reachable"
    if link.needs_a_person:
        _conditions(status, order.generation, now, ready=(F, link.reason, message), stalled=(T, link.reason, message))
    else:
        _conditions(
            status,
            order.generation,
            now,
            ready=(F, "TargetUnreachable", message),
            reconciling=(T, "TargetUnreachable", message),
        )
    return _done(order, status, actions, events)


def _missing(
    order: ObservedOrder, status: OrderStatus, actions: list[Action], events: list[Event], now: datetime.datetime
) -> Decision:
    assert status.fulfillment is not None
    name = status.fulfillment.name
    if status.phase.terminal:  # it finished; someone tidied it away afterwards
        return _done(order, status, actions, events)
    message = (
        f"Fulfillment {name} was deleted before it finished; this order cannot complete. "
        "Delete and re-create the Order to start over."
    )
    _conditions(
        status,
        order.generation,
        now,
        ready=(F, "FulfillmentMissing", message),
        stalled=(T, "FulfillmentMissing", message),
    )
    if newly(order.status.conditions, "Stalled", T, "FulfillmentMissing"):
        events.append(Event("Warning", "FulfillmentMissing", message))
    return _done(order, status, actions, events)


def _not_ours(
    order: ObservedOrder,
    status: OrderStatus,
    f: FulfillmentAsRead,
    actions: list[Action],
    events: list[Event],
    now: datetime.datetime,
) -> Decision:
    """Another object now has our Fulfillment's name (ours was deleted, someone made a new one):
    report it; never mirror it, signal it, cancel or delete it."""
    assert status.fulfillment is not None
    message = (
        f"Fulfillment {f.name} is not the one this order created (uid {status.fulfillment.uid or '?'}, "
        f"found {f.uid}{', made for another order' if f.order_uid else ', made by hand'}); it is left alone. "
        "Delete and re-create the Order to start over."
    )
    return _stall(order, status, "FulfillmentReplaced", message, now, actions, events)


def _stall(
    order: ObservedOrder,
    status: OrderStatus,
    reason: str,
    message: str,
    now: datetime.datetime,
    actions: list[Action],
    events: list[Event],
) -> Decision:
    """Stalled for ``reason``: a condition always, a Warning Event only when it is new."""
    if newly(order.status.conditions, "Stalled", T, reason):
        events.append(Event("Warning", reason, message))
    return _done(order, blocked(status, order.generation, reason, message, now), actions, events)


def _mirror(
    status: OrderStatus,
    f: FulfillmentAsRead,
    spec: OrderSpec,
    gen: int,
    now: datetime.datetime,
    events: list[Event],
    before: OrderStatus,
) -> None:
    fs = f.status
    # Every signal sent has been acted on: what the Fulfillment shows now is not on its way to us.
    sent = status.signals.generation if status.signals else None
    settled = sent is not None and fs.observed_generation is not None and fs.observed_generation >= sent
    latest = get_condition(fs.conditions, "Accepted")
    refused = latest is not None and latest.status == ConditionStatus.FALSE
    where = status.fulfillment
    status.fulfillment = FulfillmentState(
        name=f.name,
        namespace=where.namespace if where else None,
        target=where.target if where else None,
        uid=f.uid,
        phase=(fs.phase if fs.observed_generation is not None else FulfillmentPhase.PENDING).value,
        percent=fs.progress.percent if fs.progress else 0,
        current_step=fs.progress.current_step if fs.progress else None,
        paused=fs.paused,
        tracking_number=fs.tracking_number,
        generation=f.generation,
        observed_generation=fs.observed_generation,
        message=(latest.message if refused and latest else fs.failure_message),
    )
    unbelieved = unbelievable(fs, f.uid, f.cancelled)
    inconsistent = unbelieved is not None
    # Cancelled for the order's deadline (not as spec.cancelled asked): the order has failed.
    missed = status.deadline_exceeded_at is not None and status.due_at is not None and not spec.cancelled
    phase = (
        OrderPhase.FULFILLING
        if inconsistent  # not trusted: the fulfillment controller always writes its evidence
        else {
            FulfillmentPhase.SHIPPED: OrderPhase.COMPLETED,
            FulfillmentPhase.CANCELLED: OrderPhase.FAILED if missed else OrderPhase.CANCELLED,
            FulfillmentPhase.FAILED: OrderPhase.FAILED,
        }.get(fs.phase, OrderPhase.FULFILLING)
    )
    status.phase = phase
    due = f"the order was due at {_when(status.due_at)}" if missed and status.due_at else ""
    if phase.terminal:
        status.completed_at = _finished_at(before, phase, now)
        if before.phase is not phase:
            kind = "Warning" if phase is OrderPhase.FAILED else "Normal"
            if phase is OrderPhase.COMPLETED:
                detail = f"tracking number {fs.tracking_number}"
            elif missed and fs.phase is FulfillmentPhase.CANCELLED:
                detail = f"{due}; Fulfillment {f.name} was cancelled"
            else:
                detail = fs.failure_message or f"fulfillment {fs.phase.value}"
            events.append(Event(kind, phase.value, f"order {phase.value.lower()}: {detail}"))

    # kstatus's reading (docs/status.md): Ready = the spec is done, Stalled = it cannot get there
    # without a change, Reconciling = working on it.
    ready: Cond
    reconciling: Cond | None = None
    stalled: Cond | None = None
    step = fs.phase.value
    if inconsistent:
        message = f"Fulfillment {f.name} {unbelieved}: its status was written by hand"
        ready, stalled = (F, "FulfillmentStatusInconsistent", message), (T, "FulfillmentStatusInconsistent", message)
        if newly(before.conditions, "Stalled", T, "FulfillmentStatusInconsistent"):
            events.append(Event("Warning", "FulfillmentStatusInconsistent", message))
    elif phase is OrderPhase.COMPLETED and missed:
        message = (
            f"shipped; tracking number {fs.tracking_number}; "
            f"it shipped before the cancel for the deadline reached it ({due})"
        )
        ready = (T, "Completed", message)
    elif phase is OrderPhase.COMPLETED and spec.cancelled:
        # Done, and nothing a person can change: Current, as kstatus reads it, but said where
        # people look, since the spec asked for something that did not happen.
        message = f"shipped; tracking number {fs.tracking_number}; {TOO_LATE}"
        ready = (T, "Completed", message)
        if newly(before.conditions, "Ready", T, "Completed", TOO_LATE):
            events.append(Event("Warning", "CancelTooLate", f"the cancel was refused: {TOO_LATE}"))
    elif phase is OrderPhase.COMPLETED:
        ready = (T, "Completed", f"shipped; tracking number {fs.tracking_number}")
    elif phase is OrderPhase.FAILED and missed and fs.phase is FulfillmentPhase.CANCELLED:
        was = mirrored_phase(before)
        message = f"{due}; Fulfillment {f.name} was cancelled" + (f" during {was}" if was and not was.terminal else "")
        ready, stalled = (F, "DeadlineExceeded", message), (T, "DeadlineExceeded", message)
    elif missed and not phase.terminal:
        message = f"{due}; cancelling Fulfillment {f.name} (now {step})"
        ready, reconciling = (F, "DeadlineExceeded", message), (T, "DeadlineExceeded", message)
    elif phase is OrderPhase.CANCELLED and spec.cancelled:
        ready = (T, "Cancelled", "cancelled, as spec.cancelled asked")
    elif phase is OrderPhase.CANCELLED:
        message = (
            f"Fulfillment {f.name} was cancelled directly, not by this Order (spec.cancelled is false); "
            "the order cannot complete"
        )
        ready, stalled = (F, "CancelledElsewhere", message), (T, "CancelledElsewhere", message)
    elif phase is OrderPhase.FAILED:
        message = fs.failure_message or "the fulfillment failed"
        ready, stalled = (F, "FulfillmentFailed", message), (T, "FulfillmentFailed", message)
    elif fs.paused and spec.paused:
        ready = (T, "Paused", f"paused during {step}, as spec.paused asked; set it to false to resume")
    elif fs.paused and f.paused and not spec.paused and settled:
        # Paused on the Fulfillment directly (the Order did not ask): a person's patch stands until
        # the Order asks for something else, so only a change gets it going again.
        message = (
            f"Fulfillment {f.name} was paused directly during {step}; resume it there "
            "(spec.paused=false) or set this Order's spec.paused to true and back to false"
        )
        ready, stalled = (F, "PausedElsewhere", message), (T, "PausedElsewhere", message)
    else:
        due_by = f"; due at {_when(status.due_at)}" if status.due_at else ""
        ready = (F, "Fulfilling", f"fulfillment {step}" + (" (paused)" if fs.paused else "") + due_by)
        reconciling = (T, "Fulfilling", f"fulfillment {step}")
    paused = (T, "FulfillmentPaused", f"paused during {step}") if fs.paused else None
    _conditions(status, gen, now, ready=ready, reconciling=reconciling, stalled=stalled, paused=paused)
    if refused and latest and newly(before.conditions, "SignalsAccepted", F, latest.reason):
        events.append(Event("Warning", latest.reason, f"the fulfillment refused a signal: {latest.message}"))
    set_condition(
        status.conditions,
        "SignalsAccepted",
        *(
            (F, latest.reason, latest.message)
            if refused and latest
            else (T, "Accepted", "the fulfillment took every signal")
        ),
        gen,
        now,
    )


def mirrored_phase(status: OrderStatus) -> FulfillmentPhase | None:
    """The Fulfillment's phase as the Order last mirrored it (status.fulfillment.phase, a string
    in the contract so that a phase this version does not know is still shown): None if unknown."""
    phase = status.fulfillment.phase if status.fulfillment else None
    try:
        return FulfillmentPhase(phase) if phase is not None else None
    except ValueError:
        return None


def _acknowledgement(
    status: OrderStatus,
    f: FulfillmentAsRead | None,
    gen: int,
    now: datetime.datetime,
    ack_timeout: float,
    events: list[Event],
) -> float | None:
    """SignalsAcknowledged: has the Fulfillment's observedGeneration reached the last signal's?"""
    signals = status.signals
    acked_generation = f.status.observed_generation if f else None
    wanted = signals.generation if signals else None
    if signals is None or (wanted is None and signals.sent_at is None):
        return None
    if wanted is not None and acked_generation is not None and acked_generation >= wanted:
        set_condition(
            status.conditions,
            "SignalsAcknowledged",
            T,
            "Acknowledged",
            f"the fulfillment acknowledged generation {wanted}",
            gen,
            now,
        )
        return None
    sent_at = signals.sent_at or now
    waited = (now - sent_at).total_seconds()
    if waited < ack_timeout:
        set_condition(
            status.conditions,
            "SignalsAcknowledged",
            F,
            "Waiting",
            "waiting for the fulfillment controller to acknowledge the last signal",
            gen,
            now,
        )
        return ack_timeout - waited
    acked = "it has no status yet" if acked_generation is None else f"acknowledged {acked_generation}"
    message = (
        f"the fulfillment has not acknowledged the signal sent {waited:.0f}s ago "
        f"(generation {wanted}, {acked}); is the fulfillment controller running?"
    )
    if newly(status.conditions, "SignalsAcknowledged", F, "NotAcknowledged"):
        events.append(Event("Warning", "NotAcknowledged", message))
    set_condition(status.conditions, "SignalsAcknowledged", F, "NotAcknowledged", message, gen, now)
    return None


def _say_unacknowledged(status: OrderStatus, gen: int, now: datetime.datetime) -> None:
    """An order waiting on a signal nobody acknowledges says so where people look: Ready."""
    acked, ready = get_condition(status.conditions, "SignalsAcknowledged"), get_condition(status.conditions, "Ready")
    if acked and acked.reason == "NotAcknowledged" and ready and ready.status is F:
        set_condition(status.conditions, "Ready", F, ready.reason, f"{ready.message}; {acked.message}", gen, now)


def _conditions(
    status: OrderStatus,
    gen: int,
    now: datetime.datetime,
    ready: Cond,
    reconciling: Cond | None = None,
    stalled: Cond | None = None,
    paused: Cond | None = None,
) -> None:
    set_kstatus(status.conditions, gen, now, ready=ready, reconciling=reconciling, stalled=stalled)
    set_condition(status.conditions, "Paused", *(paused or NOT_PAUSED), gen, now)


def _describe(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{field}={str(value).lower()}"
    return f"{field} (changed)"


def _finished_at(before: OrderStatus, phase: OrderPhase, now: datetime.datetime) -> datetime.datetime:
    """When the Order reached ``phase``: now, unless it was there already. A completedAt written
    before the Order finished (by hand) never counts, so retention runs from the real end."""
    return (before.completed_at or now) if before.phase is phase else now


def _done(
    order: ObservedOrder,
    status: OrderStatus,
    actions: list[Action],
    events: list[Event],
    requeue_after: float | None = None,
) -> Decision:
    if not status.phase.terminal:  # a completedAt belongs to a final phase only (one written by hand)
        status.completed_at = None
    status.observed_generation = order.generation
    return Decision(status=status, actions=tuple(actions), events=tuple(events), requeue_after=requeue_after)
