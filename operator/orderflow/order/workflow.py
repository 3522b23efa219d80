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
from typing import Any

from pydantic import ValidationError

from orderflow.api.common import API_VERSION, ConditionStatus, ShippingAddress
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
from orderflow.conditions import get_condition, set_condition

FINALIZER = "order-controller.orderflow.dev/deletion-policy"
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
    shipping_address: dict[str, Any]
    status: FulfillmentStatus

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ObservedFulfillment:
        meta, spec = body["metadata"], body.get("spec") or {}
        try:
            status = FulfillmentStatus.model_validate(body.get("status") or {})
        except ValidationError:  # a newer or broken status: treat as not reported yet
            status = FulfillmentStatus()
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation", 1)),
            order_uid=(spec.get("orderRef") or {}).get("uid"),
            paused=bool(spec.get("paused", False)),
            cancelled=bool(spec.get("cancelled", False)),
            shipping_address=spec.get("shippingAddress") or {},
            status=status,
        )


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
    pass


@dataclasses.dataclass(frozen=True)
class RemoveFinalizer:
    pass


Action = AddFinalizer | CreateFulfillment | SendSignals | DeleteFulfillment | RemoveFinalizer


@dataclasses.dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Decision:
    status: OrderStatus | None  # None: leave status alone (the Order is being deleted)
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None


def fulfillment_name(order_name: str) -> str:
    """Deterministic, so a retried create finds the first one (AlreadyExists is success)."""
    return order_name


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
            "labels": {ORDER_LABEL: order.name},
            "annotations": {"orderflow.dev/order-uid": order.uid},
        },
        "spec": fspec,
    }


def decide(
    order: ObservedOrder,
    fulfillment: ObservedFulfillment | None,
    now: datetime.datetime,
    ack_timeout: float,
) -> Decision:
    """``fulfillment`` is None only when it is known not to exist (the caller has checked)."""
    if order.deleting:
        return _delete(order, fulfillment)

    actions: list[Action] = [] if order.has_finalizer else [AddFinalizer()]
    status = order.status.model_copy(deep=True)
    events: list[Event] = []
    gen = order.generation

    if status.fulfillment is None:  # not created yet
        problems = validate(order.spec)
        if problems:
            message = "; ".join(problems)
            status.phase = OrderPhase.INVALID
            _conditions(status, gen, now, ready=(F, "InvalidSpec", message), stalled=(T, "InvalidSpec", message))
            if _newly(order.status, "Stalled", "InvalidSpec"):
                events.append(Event("Warning", "InvalidSpec", message))
            return _done(order, status, actions, events)
        if order.spec.cancelled:
            status.phase = OrderPhase.CANCELLED
            status.completed_at = status.completed_at or now
            _conditions(status, gen, now, ready=(F, "Cancelled", "cancelled before fulfillment started"))
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
        if fulfillment.order_uid != order.uid:
            message = (
                f"a Fulfillment named {fulfillment.name} already exists and belongs to "
                f"{'another order' if fulfillment.order_uid else 'no order'}; "
                "rename the Order or remove that Fulfillment"
            )
            if _newly(order.status, "Stalled", "FulfillmentNameTaken"):
                events.append(Event("Warning", "FulfillmentNameTaken", message))
            return _done(order, blocked(status, gen, "FulfillmentNameTaken", message, now), actions, events)
        # Created earlier by us (e.g. before a restart lost the status write): adopt it.
        status.fulfillment = FulfillmentState(name=fulfillment.name)
        status.signals = SentSignals(
            paused=fulfillment.paused,
            cancelled=fulfillment.cancelled,
            shipping_address=_address_or_none(fulfillment.shipping_address),
            generation=fulfillment.generation,
            sent_at=now,
        )

    assert status.fulfillment is not None
    if fulfillment is None:
        return _missing(order, status, actions, events, now)

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

    _mirror(status, fulfillment, gen, now, events, order.status)
    requeue = _acknowledgement(status, fulfillment, gen, now, ack_timeout, events)
    return _done(order, status, actions, events, requeue_after=requeue)


def with_signal_generation(status: OrderStatus, generation: int) -> OrderStatus:
    """Record the Fulfillment generation a signal produced: its acknowledgement is reaching it."""
    new = status.model_copy(deep=True)
    if new.signals:
        new.signals.generation = generation
    return new


def blocked(before: OrderStatus, generation: int, reason: str, message: str, now: datetime.datetime) -> OrderStatus:
    """The order cannot go on (Fulfillment API missing or forbidden, name taken, unreadable spec)."""
    status = before.model_copy(deep=True)
    _conditions(
        status,
        generation,
        now,
        ready=(F, reason, message),
        reconciling=(T, reason, message),
        stalled=(T, reason, message),
    )
    status.observed_generation = generation
    return status


def _delete(order: ObservedOrder, fulfillment: ObservedFulfillment | None) -> Decision:
    if not order.has_finalizer:
        return Decision(status=None)
    actions: list[Action] = []
    policy = order.spec.deletion_policy
    ours = fulfillment is not None and fulfillment.order_uid in (None, order.uid)
    if ours and fulfillment is not None:
        if policy is DeletionPolicy.CANCEL and not fulfillment.cancelled and not fulfillment.status.phase.terminal:
            actions.append(SendSignals({"cancelled": True}))
        elif policy is DeletionPolicy.DELETE:
            actions.append(DeleteFulfillment())
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
    if _newly(order.status, "Stalled", "FulfillmentMissing"):
        events.append(Event("Warning", "FulfillmentMissing", message))
    return _done(order, status, actions, events)


def _mirror(
    status: OrderStatus,
    f: ObservedFulfillment,
    gen: int,
    now: datetime.datetime,
    events: list[Event],
    before: OrderStatus,
) -> None:
    fs = f.status
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
    phase = {
        "Shipped": OrderPhase.COMPLETED,
        "Cancelled": OrderPhase.CANCELLED,
        "Failed": OrderPhase.FAILED,
    }.get(fs.phase.value, OrderPhase.FULFILLING)
    status.phase = phase
    if phase.terminal:
        status.completed_at = status.completed_at or now
        if before.phase is not phase:
            kind = "Warning" if phase is OrderPhase.FAILED else "Normal"
            detail = (
                f"tracking number {fs.tracking_number}"
                if phase is OrderPhase.COMPLETED
                else (fs.failure_message or f"fulfillment {fs.phase.value}")
            )
            events.append(Event(kind, phase.value, f"order {phase.value.lower()}: {detail}"))

    if phase is OrderPhase.COMPLETED:
        ready = (T, "Completed", f"shipped; tracking number {fs.tracking_number}")
        reconciling = (F, "Completed", "the order is complete")
    elif phase.terminal:
        ready = (F, phase.value, f"the fulfillment is {fs.phase.value}")
        reconciling = (F, phase.value, f"the fulfillment is {fs.phase.value}")
    else:
        step = fs.phase.value + (" (paused)" if fs.paused else "")
        ready = (F, "Fulfilling", f"fulfillment {step}")
        reconciling = (F, "Paused", f"fulfillment {step}") if fs.paused else (T, "Fulfilling", f"fulfillment {step}")
    stalled = (T, "FulfillmentFailed", fs.failure_message or "failed") if phase is OrderPhase.FAILED else None
    paused = (T, "FulfillmentPaused", f"paused during {fs.phase.value}") if fs.paused else None
    _conditions(status, gen, now, ready=ready, reconciling=reconciling, stalled=stalled, paused=paused)
    if refused and latest and _newly(before, "SignalsAccepted", latest.reason, status=F):
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
    previous = get_condition(status.conditions, "SignalsAcknowledged")
    if previous is None or previous.reason != "NotAcknowledged":
        events.append(Event("Warning", "NotAcknowledged", message))
    set_condition(status.conditions, "SignalsAcknowledged", F, "NotAcknowledged", message, gen, now)
    return None


Cond = tuple[ConditionStatus, str, str]


def _conditions(
    status: OrderStatus,
    gen: int,
    now: datetime.datetime,
    ready: Cond,
    reconciling: Cond | None = None,
    stalled: Cond | None = None,
    paused: Cond | None = None,
) -> None:
    set_condition(status.conditions, "Ready", *ready, gen, now)
    set_condition(status.conditions, "Reconciling", *(reconciling or (F, ready[1], ready[2])), gen, now)
    set_condition(status.conditions, "Stalled", *(stalled or (F, "NoError", "no error")), gen, now)
    set_condition(status.conditions, "Paused", *(paused or (F, "NotPaused", "not paused")), gen, now)


def _newly(before: OrderStatus, type_: str, reason: str, status: ConditionStatus = T) -> bool:
    previous = get_condition(before.conditions, type_)
    return previous is None or previous.status != status or previous.reason != reason


def _describe(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{field}={str(value).lower()}"
    return f"{field} (changed)"


def _address_or_none(raw: dict[str, Any]) -> ShippingAddress | None:
    try:
        return ShippingAddress.model_validate(raw)
    except ValidationError:
        return None


def _done(
    order: ObservedOrder,
    status: OrderStatus,
    actions: list[Action],
    events: list[Event],
    requeue_after: float | None = None,
) -> Decision:
    status.observed_generation = order.generation
    return Decision(status=status, actions=tuple(actions), events=tuple(events), requeue_after=requeue_after)
