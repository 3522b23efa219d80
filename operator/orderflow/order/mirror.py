"""What the Order reads of its Fulfillment, as a pure function: no Kopf, no I/O, no clock.

The Fulfillment is known only through its contract: ``FulfillmentAsRead`` is what the order
controller keeps of one (``fulfillment_as_read``, its cache's transform, keeps exactly that), and
``read`` says what its status means for the Order: the state mirrored into
``status.fulfillment``, the Order's phase, and kstatus's reading of both (docs/status.md). The
decision (``order.workflow``) takes it from there.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from orderflow.api.common import ConditionStatus, ShippingAddress
from orderflow.api.evidence import unbelievable
from orderflow.api.fulfillment import FulfillmentPhase, FulfillmentStatus
from orderflow.api.order import FulfillmentState, OrderPhase, OrderSpec, OrderStatus
from orderflow.runtime.pure.conditions import Cond, get_condition, newly
from orderflow.runtime.pure.events import Event
from orderflow.runtime.pure.reading import generation_of, lenient, status_of

T, F = ConditionStatus.TRUE, ConditionStatus.FALSE

TOO_LATE = "the cancel came too late: the parcel had already shipped"


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

    @property
    def shipped(self) -> bool:
        """Shipped, and believably so (the fulfillment controller always writes its evidence)."""
        return self.status.phase is FulfillmentPhase.SHIPPED and self.unbelievable is None

    @property
    def unbelievable(self) -> str | None:
        """What its status shows that its controller never writes (someone else did), or None."""
        return unbelievable(self.status, self.uid, self.cancelled)


def fulfillment_as_read(body: dict[str, Any]) -> dict[str, Any]:
    """A Fulfillment as this controller's decisions read it (FulfillmentAsRead.from_body): its
    history, its other conditions and its items and customer are never read here, so the order
    controller's cache does not keep them (less memory per Fulfillment, and less personal data)."""
    spec = {k: v for k, v in (body.get("spec") or {}).items() if k not in ("items", "customerEmail")}
    status = dict(body.get("status") or {})
    status["history"] = (status.get("history") or [])[-1:]  # the newest entry: a Shipped status's evidence
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") == "Accepted"]
    return {**body, "spec": spec, "status": status}


def mirrored_phase(status: OrderStatus) -> FulfillmentPhase | None:
    """The Fulfillment's phase as the Order last mirrored it (status.fulfillment.phase, a string
    in the contract so that a phase this version does not know is still shown): None if unknown."""
    phase = status.fulfillment.phase if status.fulfillment else None
    try:
        return FulfillmentPhase(phase) if phase is not None else None
    except ValueError:
        return None


def when(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Reading:
    """What the Fulfillment's status means for the Order, as of one decision."""

    fulfillment: FulfillmentState  # mirrored into status.fulfillment
    phase: OrderPhase
    ready: Cond
    reconciling: Cond | None
    stalled: Cond | None
    paused: Cond | None
    accepted: Cond  # SignalsAccepted: did the Fulfillment take every signal?
    events: tuple[Event, ...]


def read(f: FulfillmentAsRead, spec: OrderSpec, status: OrderStatus, before: OrderStatus) -> Reading:
    """``status``: the Order's as decided so far (the signals sent, where its Fulfillment lives,
    its deadline); ``before``: as the decision found it, so that what is new is warned of once."""
    fs = f.status
    events: list[Event] = []
    # Every signal sent has been acted on: what the Fulfillment shows now is not on its way to us.
    sent = status.signals.generation if status.signals else None
    settled = sent is not None and fs.observed_generation is not None and fs.observed_generation >= sent
    latest = get_condition(fs.conditions, "Accepted")
    refused = latest is not None and latest.status == ConditionStatus.FALSE
    where = status.fulfillment
    state = FulfillmentState(
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
    unbelieved = f.unbelievable
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
    due = f"the order was due at {when(status.due_at)}" if missed and status.due_at else ""
    if phase.terminal and before.phase is not phase:
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
        due_by = f"; due at {when(status.due_at)}" if status.due_at else ""
        ready = (F, "Fulfilling", f"fulfillment {step}" + (" (paused)" if fs.paused else "") + due_by)
        reconciling = (T, "Fulfilling", f"fulfillment {step}")
    paused = (T, "FulfillmentPaused", f"paused during {step}") if fs.paused else None
    if refused and latest and newly(before.conditions, "SignalsAccepted", F, latest.reason):
        events.append(Event("Warning", latest.reason, f"the fulfillment refused a signal: {latest.message}"))
    accepted: Cond = (
        (F, latest.reason, latest.message)
        if refused and latest
        else (T, "Accepted", "the fulfillment took every signal")
    )
    return Reading(state, phase, ready, reconciling, stalled, paused, accepted, tuple(events))
