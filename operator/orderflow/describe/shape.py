"""What ``orderflow describe`` answers: the two summaries and the timeline, and their JSON shape.

The JSON shape (``orderflow describe -o json``) is :meth:`Description.wire`::

    {"order": Summary, "fulfillment": Summary, "timeline": [Row, ...]}

Row: ``{"time", "object", "kind", "what", "detail", "sinceStartSeconds", "durationSeconds"}`` with
``time`` RFC 3339 (UTC), ``object`` ``"Order"`` or ``"Fulfillment"``, ``kind`` one of
:data:`ROW_KINDS`, ``sinceStartSeconds`` counted from the first row, and ``durationSeconds``: for
``history`` the time since the previous history entry (since creation for the first), for
``acknowledged`` the time since the signal was sent, for ``phase`` the time since the Order's
creation, else null. An Event that repeats a row (same object and reason, posted within seconds of
it: the Event of a history entry, of a condition or of a signal) is folded into that row, so each
happening shows once; ``events`` in the summaries counts them all.

Personal data: a summary is the object itself and carries its shipping address; timeline details
never do (addresses and e-mail addresses are replaced by ``[address]`` and ``[email]``).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

ORDER, FULFILLMENT = "Order", "Fulfillment"
SUBJECTS = {"order": ORDER, "fulfillment": FULFILLMENT}

# What a row tells of, in the order rows of the same instant are listed.
ROW_KINDS = ("created", "signal", "history", "phase", "acknowledged", "condition", "event", "deleted")
RANK = {kind: i for i, kind in enumerate(ROW_KINDS)}


# -- input ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What was read: the object asked about, the other one (None when absent) and the Events of both.

    ``subject`` is ``"order"`` or ``"fulfillment"``; ``name`` the name asked for. ``events`` may hold
    Events of earlier objects of the same names: only those of these objects' uids are used (and of
    the Fulfillment uid the Order last saw, when that Fulfillment is gone)."""

    subject: str
    name: str
    namespace: str
    order: Mapping[str, Any] | None
    fulfillment: Mapping[str, Any] | None
    events: tuple[Mapping[str, Any], ...] = ()
    events_note: str | None = None  # why Events could not be read, when they could not
    fulfillment_note: str | None = None  # why the Order's Fulfillment, in a target, could not be read
    order_note: str | None = None  # where the Fulfillment's Order is, when it is not in this namespace
    fulfillment_context: str | None = None  # the kubeconfig context it was read through, when not the Order's


# -- output -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConditionView:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: datetime.datetime

    def wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": iso(self.last_transition_time),
        }


@dataclasses.dataclass(frozen=True)
class Signals:
    """The last signal: as the Order recorded sending it, and whether the Fulfillment acknowledged it.

    For a Fulfillment without an Order, ``generation`` is its own metadata.generation (the last spec
    change of anyone) and ``sent_at`` is unknown."""

    paused: bool | None
    cancelled: bool | None
    generation: int | None
    sent_at: datetime.datetime | None
    acknowledged_generation: int | None
    acknowledged: bool | None  # None: not known (no Fulfillment to ask)
    acknowledged_at: datetime.datetime | None

    def wire(self) -> dict[str, Any]:
        return {
            "paused": self.paused,
            "cancelled": self.cancelled,
            "generation": self.generation,
            "sentAt": iso(self.sent_at),
            "acknowledged": self.acknowledged,
            "acknowledgedGeneration": self.acknowledged_generation,
            "acknowledgedAt": iso(self.acknowledged_at),
        }


@dataclasses.dataclass(frozen=True)
class Step:
    """The Fulfillment's current timed step."""

    name: str
    elapsed_seconds: float  # not counting paused time
    paused: bool

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "elapsedSeconds": round(self.elapsed_seconds, 3), "paused": self.paused}


@dataclasses.dataclass(frozen=True)
class Summary:
    """One object as it is now. ``exists`` False: see ``note`` (not created yet, deleted, none)."""

    kind: str
    name: str | None
    namespace: str
    exists: bool
    note: str | None = None
    uid: str | None = None
    created: datetime.datetime | None = None
    deleting: datetime.datetime | None = None
    generation: int | None = None
    observed_generation: int | None = None
    phase: str | None = None
    percent: int | None = None
    current_step: str | None = None
    completed_steps: int | None = None
    total_steps: int | None = None
    paused: bool | None = None
    tracking_number: str | None = None
    completed_at: datetime.datetime | None = None
    due_at: datetime.datetime | None = None  # spec.activeDeadlineSeconds after creation
    deadline_exceeded_at: datetime.datetime | None = None  # Order: when it was found past due
    failure_reason: str | None = None  # Fulfillment: DeadlineExceeded
    ready: ConditionView | None = None
    stalled: ConditionView | None = None
    conditions: tuple[ConditionView, ...] = ()
    signals: Signals | None = None
    step: Step | None = None
    order_ref: str | None = None  # Fulfillment: the Order named in spec.orderRef
    target: str | None = None  # Order: the target its Fulfillment lives in (spec.target)
    context: str | None = None  # Fulfillment: the kubeconfig context it was read through, when not the Order's
    shipping_address: str | None = None  # the object's own data, shown with it, never in the timeline
    events: int = 0
    history_truncated: bool = False

    def wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "exists": self.exists,
            "note": self.note,
            "uid": self.uid,
            "created": iso(self.created),
            "deleting": iso(self.deleting),
            "generation": self.generation,
            "observedGeneration": self.observed_generation,
            "phase": self.phase,
            "progress": {
                "percent": self.percent,
                "currentStep": self.current_step,
                "completedSteps": self.completed_steps,
                "totalSteps": self.total_steps,
            },
            "paused": self.paused,
            "trackingNumber": self.tracking_number,
            "completedAt": iso(self.completed_at),
            "dueAt": iso(self.due_at),
            "deadlineExceededAt": iso(self.deadline_exceeded_at),
            "failureReason": self.failure_reason,
            "ready": self.ready.wire() if self.ready else None,
            "stalled": self.stalled.wire() if self.stalled else None,
            "conditions": [c.wire() for c in self.conditions],
            "signals": self.signals.wire() if self.signals else None,
            "step": self.step.wire() if self.step else None,
            "orderRef": self.order_ref,
            "target": self.target,
            "context": self.context,
            "shippingAddress": self.shipping_address,
            "events": self.events,
            "historyTruncated": self.history_truncated,
        }


@dataclasses.dataclass(frozen=True)
class Row:
    time: datetime.datetime
    object: str  # "Order" or "Fulfillment"
    kind: str  # one of ROW_KINDS
    what: str
    detail: str
    since_start: float = 0.0
    duration: float | None = None
    whole_seconds: bool = False  # an Event's or metadata time: the API server keeps whole seconds

    def wire(self) -> dict[str, Any]:
        return {
            "time": iso(self.time),
            "object": self.object,
            "kind": self.kind,
            "what": self.what,
            "detail": self.detail,
            "sinceStartSeconds": round(self.since_start, 3),
            "durationSeconds": None if self.duration is None else round(self.duration, 3),
        }


@dataclasses.dataclass(frozen=True)
class Description:
    subject: str  # "order" or "fulfillment": what was asked for
    order: Summary
    fulfillment: Summary
    timeline: tuple[Row, ...]
    notes: tuple[str, ...] = ()  # what could not be read

    def wire(self) -> dict[str, Any]:
        return {
            "order": self.order.wire(),
            "fulfillment": self.fulfillment.wire(),
            "timeline": [row.wire() for row in self.timeline],
        }


def iso(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    utc = value.astimezone(datetime.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"
