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
from typing import Any

from orderflow.api.common import API_VERSION, ConditionStatus, ShippingAddress, seconds_until_expiry
from orderflow.api.evidence import unbelievable
from orderflow.api.fulfillment import KIND as FULFILLMENT_KIND
from orderflow.api.fulfillment import FulfillmentStatus
from orderflow.api.order import (
    DeletionPolicy,
    FulfillmentState,
    OrderPhase,
    OrderSpec,
    OrderStatus,
    SentSignals,
)
from orderflow.runtime.conditions import NOT_PAUSED, Cond, get_condition, newly, set_condition, set_kstatus
from orderflow.runtime.events import Event
from orderflow.runtime.reading import generation_of, lenient, status_of

FINALIZER = "order-controller.orderflow.dev/deletion-policy"
API_RETRY_SECONDS = 30.0  # how often to look again while the Fulfillment API cannot be used
ORDER_LABEL = "orderflow.dev/order"
MAX_UNITS_PER_ORDER = 1_000
T, F = ConditionStatus.TRUE, ConditionStatus.FALSE


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


@dataclasses.dataclass(frozen=True)
class ObservedFulfillment:
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
    def from_body(cls, body: dict[str, Any]) -> ObservedFulfillment:
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
    """A Fulfillment as this controller's decisions read it (ObservedFulfillment.from_body): its
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
class DeleteOrder:
    """Its time to live after finishing is over (retention, as Job's ttlSecondsAfterFinished)."""


Action = AddFinalizer | CreateFulfillment | SendSignals | DeleteFulfillment | RemoveFinalizer | DeleteOrder


@dataclasses.dataclass(frozen=True)
class Decision:
    status: OrderStatus | None  # None: leave status alone (the Order is being deleted)
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None


def fulfillment_name(order_name: str) -> str:
    """Deterministic, so a retried create finds the first one (AlreadyExists is success)."""
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


def fulfillment_body(order: ObservedOrder) -> dict[str, Any]:
    spec = order.spec
    fspec: dict[str, Any] = {
        "orderRef": {"name": order.name, "uid": order.uid},
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
            "name": fulfillment_name(order.name),
            "namespace": order.namespace,
            "labels": {ORDER_LABEL: label_value(order.name)},
            "annotations": {"orderflow.dev/order-uid": order.uid},
        },
        "spec": fspec,
    }


def decide(
    order: ObservedOrder,
    fulfillment: ObservedFulfillment | None,
    now: datetime.datetime,
    ack_timeout: float,
    default_ttl: int | None = None,
) -> Decision:
    """``fulfillment`` is None only when it is known not to exist (the caller has checked).
    ``default_ttl``: the controller's retention for Orders that set none."""
    ttl = order.spec.ttl_seconds_after_finished if order.spec.ttl_seconds_after_finished is not None else default_ttl
    if order.deleting:
        return _delete(order, fulfillment, ttl)
    return _retain(_decide(order, fulfillment, now, ack_timeout), ttl, now)


def _retain(decision: Decision, ttl: int | None, now: datetime.datetime) -> Decision:
    """A finished Order lives ``ttl`` seconds after it finished, then is deleted (its finalizer
    then applies the deletion policy to its Fulfillment)."""
    status = decision.status
    left = seconds_until_expiry(status.completed_at if status and status.phase.terminal else None, ttl, now)
    if left is None:
        return decision
    if left <= 0:
        return dataclasses.replace(decision, actions=(*decision.actions, DeleteOrder()))
    requeue = left if decision.requeue_after is None else min(left, decision.requeue_after)
    return dataclasses.replace(decision, requeue_after=requeue)


def _decide(
    order: ObservedOrder,
    fulfillment: ObservedFulfillment | None,
    now: datetime.datetime,
    ack_timeout: float,
) -> Decision:
    actions: list[Action] = [] if order.has_finalizer else [AddFinalizer()]
    status = order.status.copied()
    events: list[Event] = []
    gen = order.generation

    if status.fulfillment is None:  # not created yet
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
            body = fulfillment_body(order)
            actions.append(CreateFulfillment(body))
            status.fulfillment = FulfillmentState(name=body["metadata"]["name"], phase="Pending")
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
        status.fulfillment = FulfillmentState(name=fulfillment.name, uid=fulfillment.uid)
        status.signals = SentSignals(
            paused=fulfillment.paused,
            cancelled=fulfillment.cancelled,
            shipping_address=fulfillment.shipping_address,
            generation=fulfillment.generation,
            sent_at=now,
        )

    assert status.fulfillment is not None
    if fulfillment is None:
        return _missing(order, status, actions, events, now)
    if not is_ours(order, status.fulfillment, fulfillment):
        return _not_ours(order, status, fulfillment, actions, events, now)

    # Signals: only what the Order's own desired value changed since it was last sent.
    signals = status.signals or SentSignals()
    patch: dict[str, Any] = {}
    if order.spec.paused != signals.paused:
        patch["paused"] = order.spec.paused
    if order.spec.cancelled and not signals.cancelled:
        patch["cancelled"] = True
    if order.spec.shipping_address != signals.shipping_address:
        patch["shippingAddress"] = order.spec.shipping_address.wire()
    terminal = fulfillment.status.phase.terminal
    if patch and not (terminal and set(patch) == {"paused"}):
        actions.append(SendSignals(patch))
        status.signals = SentSignals(
            paused=order.spec.paused,
            cancelled=order.spec.cancelled,
            shipping_address=order.spec.shipping_address,
            generation=None,  # filled in from the Fulfillment's new generation once written
            sent_at=now,
        )
        sent = ", ".join(_describe(k, v) for k, v in sorted(patch.items()))
        events.append(Event("Normal", "SignalSent", f"sent {sent} to Fulfillment {fulfillment.name}"))

    _mirror(status, fulfillment, order.spec, gen, now, events, order.status)
    requeue = _acknowledgement(status, fulfillment, gen, now, ack_timeout, events)
    _say_unacknowledged(status, gen, now)
    return _done(order, status, actions, events, requeue_after=requeue)


@dataclasses.dataclass(frozen=True)
class ApiFailure:
    """An API error an action met that retrying at once cannot fix: the server's code and words."""

    code: int
    message: str


def describe_action(action: Action, order_name: str) -> str:
    """What carrying out ``action`` did, in a few words for the controller's log: the Fulfillment's
    name and the signals' values, never an address (a changed one is only "changed")."""
    name = fulfillment_name(order_name)
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
    if isinstance(action, DeleteOrder):
        return "deleted the Order (its time to live after finishing is over)"
    return type(action).__name__


_VERBS = {CreateFulfillment: "create", SendSignals: "signal", DeleteFulfillment: "delete"}


def action_failed(
    order: ObservedOrder, before: OrderStatus, action: Action, failure: ApiFailure, now: datetime.datetime
) -> Decision:
    """Every error the controller cannot retry its way out of ends on the Order — a condition and
    one Warning Event with the server's message — never only in a log. A missing API or a missing
    permission may come back by itself (a chart installed, RBAC fixed): look again every 30 s. A
    refusal of what was sent (422) will not: it waits for a change to the Order."""
    verb = _VERBS.get(type(action), "update")
    name = fulfillment_name(order.name)
    if failure.code == 404 and isinstance(action, CreateFulfillment):
        reason, retry = "FulfillmentAPIUnavailable", API_RETRY_SECONDS
        message = "the Fulfillment API (fulfillments.orderflow.dev) is not installed; install its CRD"
    elif failure.code == 403:
        reason, retry = "FulfillmentForbidden", API_RETRY_SECONDS
        message = f"not allowed to {verb} Fulfillments: {failure.message}"
    else:
        reason, retry = "FulfillmentRejected", None
        message = f"the API server refused to {verb} Fulfillment {name} ({failure.code}): {failure.message}"
    events = (Event("Warning", reason, message),) if newly(before.conditions, "Stalled", T, reason) else ()
    return Decision(status=blocked(before, order.generation, reason, message, now), events=events, requeue_after=retry)


def invalid_spec(before: OrderStatus, generation: int, problem: str, now: datetime.datetime) -> Decision:
    """A spec the schema let through but this controller cannot read (an older CRD, say)."""
    message = f"spec cannot be used: {problem}"
    events = (
        (Event("Warning", "InvalidSpec", message),) if newly(before.conditions, "Stalled", T, "InvalidSpec") else ()
    )
    return Decision(status=blocked(before, generation, "InvalidSpec", message, now), events=events)


def is_ours(order: ObservedOrder, recorded: FulfillmentState | None, f: ObservedFulfillment) -> bool:
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


def _delete(order: ObservedOrder, fulfillment: ObservedFulfillment | None, ttl: int | None) -> Decision:
    if not order.has_finalizer:
        return Decision(status=None)
    actions: list[Action] = []
    policy = order.spec.deletion_policy
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
    f: ObservedFulfillment,
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
    f: ObservedFulfillment,
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
    status.fulfillment = FulfillmentState(
        name=f.name,
        uid=f.uid,
        phase=fs.phase.value if fs.observed_generation is not None else "Pending",
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
    phase = (
        OrderPhase.FULFILLING
        if inconsistent  # not trusted: the fulfillment controller always writes its evidence
        else {
            "Shipped": OrderPhase.COMPLETED,
            "Cancelled": OrderPhase.CANCELLED,
            "Failed": OrderPhase.FAILED,
        }.get(fs.phase.value, OrderPhase.FULFILLING)
    )
    status.phase = phase
    if phase.terminal:
        status.completed_at = _finished_at(before, phase, now)
        if before.phase is not phase:
            kind = "Warning" if phase is OrderPhase.FAILED else "Normal"
            detail = (
                f"tracking number {fs.tracking_number}"
                if phase is OrderPhase.COMPLETED
                else (fs.failure_message or f"fulfillment {fs.phase.value}")
            )
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
    elif phase is OrderPhase.COMPLETED:
        ready = (T, "Completed", f"shipped; tracking number {fs.tracking_number}")
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
        ready = (F, "Fulfilling", f"fulfillment {step}" + (" (paused)" if fs.paused else ""))
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


def _acknowledgement(
    status: OrderStatus,
    f: ObservedFulfillment | None,
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
    message = (
        f"the fulfillment has not acknowledged the signal sent {waited:.0f}s ago "
        f"(generation {wanted}, acknowledged {acked_generation}); is the fulfillment controller running?"
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
