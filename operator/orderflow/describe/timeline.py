"""An Order's and its Fulfillment's story as one timeline: objects in, summaries and rows out. No I/O.

The story is spread over two objects and their Events: the Order's status (phase, conditions, the
signals it last sent), the Fulfillment's ``status.history`` and conditions, its ``generation`` vs
``status.observedGeneration`` (has the last signal been acknowledged?), and the Events whose
``involvedObject`` is either of them. :func:`describe` merges them into rows sorted by time.

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
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from orderflow.api.common import GROUP, HISTORY_LIMIT, Condition, ConditionStatus, HistoryEntry, ShippingAddress
from orderflow.api.fulfillment import FulfillmentStatus
from orderflow.api.order import OrderStatus
from orderflow.runtime.reading import lenient

ORDER, FULFILLMENT = "Order", "Fulfillment"
SUBJECTS = {"order": ORDER, "fulfillment": FULFILLMENT}

# What a row tells of, in the order rows of the same instant are listed.
ROW_KINDS = ("created", "signal", "history", "phase", "acknowledged", "condition", "event", "deleted")
_RANK = {kind: i for i, kind in enumerate(ROW_KINDS)}

# Which condition transitions are rows. Every condition is written first when the object's status
# is first written; those first values are the starting state, rows only when they say something
# is wrong (a Stalled order from the start). A later transition is a row, except to states another
# row already tells (Paused=False is the Resumed entry; signals have rows of their own).
_WRONG = {
    ("Stalled", "True"),
    ("Paused", "True"),
    ("Accepted", "False"),
    ("SignalsAccepted", "False"),
    ("SignalsAcknowledged", "False"),
}
_TOLD_ELSEWHERE = {("Paused", "False"), ("Accepted", "True"), ("SignalsAccepted", "True")}
_COVERED = {("SignalsAcknowledged", "Acknowledged"), ("SignalsAcknowledged", "Waiting")}

# An Event is posted after the status write it tells of, with a time in whole seconds.
_FOLD_SLACK = datetime.timedelta(milliseconds=5)
_FOLD_AFTER = datetime.timedelta(seconds=10)

M = TypeVar("M", bound=BaseModel)


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
            "lastTransitionTime": _iso(self.last_transition_time),
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
            "sentAt": _iso(self.sent_at),
            "acknowledged": self.acknowledged,
            "acknowledgedGeneration": self.acknowledged_generation,
            "acknowledgedAt": _iso(self.acknowledged_at),
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
            "created": _iso(self.created),
            "deleting": _iso(self.deleting),
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
            "completedAt": _iso(self.completed_at),
            "dueAt": _iso(self.due_at),
            "deadlineExceededAt": _iso(self.deadline_exceeded_at),
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
            "time": _iso(self.time),
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


# -- the pure core ----------------------------------------------------------------------------


def describe(snapshot: Snapshot, now: datetime.datetime) -> Description:
    """The summaries of both objects and one timeline of everything known to have happened."""
    notes: list[str] = []
    order = _Order.read(snapshot.order, notes) if snapshot.order else None
    fulfillment = _Fulfillment.read(snapshot.fulfillment, notes) if snapshot.fulfillment else None

    # Pair them: a Fulfillment is the Order's only when its spec.orderRef names the Order's uid.
    order_note: str | None = None
    fulfillment_note: str | None = None
    foreign = False  # a Fulfillment of the Order's name that is not the Order's
    if snapshot.subject == "fulfillment" and fulfillment is not None:
        ref = fulfillment.order_ref
        if ref is None:
            order_note = "none: this Fulfillment has no spec.orderRef (made by hand or by another tool)"
            order = None
        elif order is None:
            order_note = snapshot.order_note or f"Order {ref[0]} no longer exists (it was deleted)"
        elif order.uid != ref[1]:
            order_note = f"Order {ref[0]} was deleted; the Order of that name now is another object"
            order = None
    elif order is not None:
        fulfillment_note = snapshot.fulfillment_note or _fulfillment_note(order, fulfillment)
        if fulfillment is not None and not _ours(order, fulfillment):
            fulfillment, foreign = None, True
            if fulfillment_note and snapshot.fulfillment_context:
                fulfillment_note += f" (read through context {snapshot.fulfillment_context})"

    redact = _Redactor(order, fulfillment)
    rows: list[_Draft] = []
    if order is not None:
        rows += order.rows(fulfillment)
    if fulfillment is not None:
        rows += fulfillment.rows()

    uids = {}
    if order is not None:
        uids[order.uid] = ORDER
        if order.status.fulfillment and order.status.fulfillment.uid:
            uids[order.status.fulfillment.uid] = FULFILLMENT  # also when it is gone
    if fulfillment is not None:
        uids[fulfillment.uid] = FULFILLMENT
    names = {ORDER: order.name if order else None, FULFILLMENT: fulfillment.name if fulfillment else None}
    events = [e for e in (_event(raw, uids, names) for raw in snapshot.events) if e is not None]
    rows += _fold(rows, events)
    if snapshot.events_note:
        notes.append(snapshot.events_note)

    timeline = _finish(rows, redact)
    counts = {kind: sum(1 for e in events if e.object == kind) for kind in (ORDER, FULFILLMENT)}
    order_name = order.name if order else _order_name(snapshot, fulfillment)
    order_summary = (
        order.summary(snapshot.namespace, fulfillment, counts[ORDER])
        if order
        else Summary(ORDER, order_name, snapshot.namespace, exists=False, note=order_note)
    )
    if fulfillment is not None:
        # Its own namespace: in a target, another than the Order's.
        fulfillment_summary = fulfillment.summary(
            fulfillment.meta.namespace or snapshot.namespace, now, counts[FULFILLMENT]
        )
        if snapshot.fulfillment_context is not None:
            fulfillment_summary = dataclasses.replace(fulfillment_summary, context=snapshot.fulfillment_context)
    else:
        fulfillment_summary = _absent_fulfillment(snapshot, order, fulfillment_note, counts[FULFILLMENT], foreign)
    return Description(snapshot.subject, order_summary, fulfillment_summary, timeline, tuple(notes))


def is_orders(order: Mapping[str, Any], fulfillment: Mapping[str, Any]) -> bool:
    """Whether ``fulfillment`` is ``order``'s: identity, not name, as the order controller decides
    (``orderflow.order.workflow.is_ours``): its ``spec.orderRef.uid`` names the Order, and it is the
    very object the Order recorded (``status.fulfillment.uid``, which nobody can choose)."""
    spec, meta = fulfillment.get("spec") or {}, fulfillment.get("metadata") or {}
    ref = spec.get("orderRef") if isinstance(spec, Mapping) else None
    if not isinstance(ref, Mapping) or not ref.get("uid") or ref.get("uid") != (order.get("metadata") or {}).get("uid"):
        return False
    recorded = ((order.get("status") or {}).get("fulfillment") or {}).get("uid")
    return not recorded or recorded == meta.get("uid")


def _ours(order: _Order, fulfillment: _Fulfillment) -> bool:
    if fulfillment.order_ref is None or fulfillment.order_ref[1] != order.uid:
        return False
    recorded = order.status.fulfillment.uid if order.status.fulfillment else None
    return recorded is None or recorded == fulfillment.uid


def _order_name(snapshot: Snapshot, fulfillment: _Fulfillment | None) -> str | None:
    if snapshot.subject == "order":
        return snapshot.name
    return fulfillment.order_ref[0] if fulfillment and fulfillment.order_ref else None


def _fulfillment_note(order: _Order, fulfillment: _Fulfillment | None) -> str | None:
    mirrored = order.status.fulfillment
    name = mirrored.name if mirrored else order.name
    if fulfillment is not None:
        if fulfillment.order_ref is None:
            return f"a Fulfillment named {name} exists but belongs to no order; it is not this Order's"
        if fulfillment.order_ref[1] != order.uid:
            return f"a Fulfillment named {name} exists but belongs to another order; it is not this Order's"
        if not _ours(order, fulfillment):
            return (
                f"a Fulfillment named {name} names this Order but is not the one it created (uid {fulfillment.uid}, "
                f"the Order recorded {mirrored.uid if mirrored else '?'}); it is not this Order's"
            )
        return None
    if mirrored is None:
        if order.status.phase.value == "Invalid":
            return "not created: the Order is invalid (see its Stalled condition)"
        if order.status.phase.value == "Cancelled":
            return "not created: the Order was cancelled before its fulfillment started"
        return "does not exist yet: the order controller has not created it (is it running?)"
    if order.status.phase.terminal:
        return f"Fulfillment {name} was deleted after the order finished; shown as last reported on the Order"
    return f"Fulfillment {name} was deleted before it finished: the order cannot complete"


def _absent_fulfillment(
    snapshot: Snapshot, order: _Order | None, note: str | None, events: int, foreign: bool
) -> Summary:
    mirrored = order.status.fulfillment if order else None
    name = mirrored.name if mirrored else (order.name if order else snapshot.name)
    namespace = (mirrored.namespace if mirrored else None) or snapshot.namespace
    finished = order is not None and order.status.phase.terminal
    unread = snapshot.fulfillment_note is not None  # in a target this kubeconfig cannot read
    if mirrored is None or not (finished or unread) or foreign:
        return Summary(FULFILLMENT, name, namespace, exists=False, note=note, events=events)
    return Summary(  # gone after it finished, or not readable here: what the Order last saw of it
        FULFILLMENT,
        name,
        namespace,
        exists=False,
        note=note,
        uid=mirrored.uid,
        phase=mirrored.phase,
        percent=mirrored.percent,
        current_step=mirrored.current_step,
        tracking_number=mirrored.tracking_number,
        events=events,
    )


# -- reading the objects ------------------------------------------------------------------------


@dataclasses.dataclass
class _Draft:
    time: datetime.datetime
    object: str
    kind: str
    what: str
    detail: str
    duration: float | None = None
    folds: tuple[str, ...] = ()  # the reasons of the Events that repeat this row
    conflicts: tuple[str, ...] = ()  # an Event whose message says one of these is not this row's
    whole_seconds: bool = False
    folded: bool = False


@dataclasses.dataclass(frozen=True)
class _Meta:
    name: str
    uid: str
    created: datetime.datetime | None
    deleting: datetime.datetime | None
    generation: int | None
    namespace: str | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> _Meta:
        meta = body.get("metadata") or {}
        generation = meta.get("generation")
        return cls(
            namespace=meta.get("namespace"),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            created=_time(meta.get("creationTimestamp")),
            deleting=_time(meta.get("deletionTimestamp")),
            generation=int(generation) if generation is not None else None,
        )


def _parse(model: type[M], raw: Any, what: str, notes: list[str]) -> M:
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        notes.append(f"{what} could not be read by this version of orderflow ({exc.error_count()} errors); shown empty")
        return model()


def _address(raw: Any) -> ShippingAddress | None:
    return lenient(ShippingAddress, raw, None) if raw else None


def one_line(address: ShippingAddress) -> str:
    parts = [address.name, address.street, address.line2, f"{address.postal_code} {address.city}", address.region]
    return ", ".join([p for p in parts if p] + [address.country])


class _Named:
    """What both objects answer to: their name and uid, from their metadata."""

    meta: _Meta

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def uid(self) -> str:
        return self.meta.uid


@dataclasses.dataclass(frozen=True)
class _Order(_Named):
    meta: _Meta
    spec: Mapping[str, Any]
    status: OrderStatus

    @classmethod
    def read(cls, body: Mapping[str, Any], notes: list[str]) -> _Order:
        meta = _Meta.of(body)
        status = _parse(OrderStatus, body.get("status"), f"Order {meta.name}'s status", notes)
        return cls(meta, body.get("spec") or {}, status)

    def rows(self, fulfillment: _Fulfillment | None) -> list[_Draft]:
        rows: list[_Draft] = []
        if self.meta.created:
            items = self.spec.get("items") or []
            units = sum(int(i.get("quantity", 0)) for i in items if isinstance(i, Mapping))
            policy = self.spec.get("deletionPolicy", "Cancel")
            detail = f"{_count(units, 'unit')} of {_count(len(items), 'SKU')}; deletionPolicy {policy}"
            rows.append(_Draft(self.meta.created, ORDER, "created", "Created", detail))
        if self.meta.deleting:
            detail = f"deletionPolicy {self.spec.get('deletionPolicy', 'Cancel')}"
            rows.append(_Draft(self.meta.deleting, ORDER, "deleted", "Deletion requested", detail))
        signals = self.signals(fulfillment)
        if signals is not None and signals.sent_at is not None:
            first = signals.generation == 1
            target = f"Fulfillment generation {signals.generation}" if signals.generation else "the Fulfillment"
            values = f"paused={_bool(signals.paused)}, cancelled={_bool(signals.cancelled)}"
            rows.append(
                _Draft(
                    signals.sent_at,
                    ORDER,
                    "signal",
                    "Signal sent",
                    f"{'created and started' if first else 'sent to'} {target}: {values}",
                    folds=("FulfillmentCreated",) if first else ("SignalSent",),
                    conflicts=(f"paused={_bool(not signals.paused)}",)
                    + (() if signals.cancelled else ("cancelled=true",)),
                )
            )
            if signals.acknowledged and signals.acknowledged_at is not None:
                rows.append(
                    _Draft(
                        signals.acknowledged_at,
                        FULFILLMENT,
                        "acknowledged",
                        "Signal acknowledged",
                        f"status.observedGeneration {signals.acknowledged_generation} reached generation "
                        f"{signals.generation}",
                        duration=_seconds(signals.acknowledged_at - signals.sent_at),
                    )
                )
        exceeded, due = self.status.deadline_exceeded_at, self.status.due_at
        if exceeded is not None and due is not None:
            rows.append(
                _Draft(
                    exceeded,
                    ORDER,
                    "phase",
                    "DeadlineExceeded",
                    f"due at {_iso(due)} (spec.activeDeadlineSeconds), not shipped: cancelling the Fulfillment",
                    folds=("DeadlineExceeded",),
                )
            )
        if self.status.completed_at is not None:
            since = _seconds(self.status.completed_at - self.meta.created) if self.meta.created else None
            ready = _condition(self.status.conditions, "Ready")
            phase = self.status.phase.value
            rows.append(
                _Draft(
                    self.status.completed_at,
                    ORDER,
                    "phase",
                    phase,
                    f"the order is {phase}" + (f": {ready.message}" if ready else ""),
                    duration=since,
                    folds=(phase,),
                )
            )
        rows += _condition_rows(ORDER, self.status.conditions)
        return rows

    def signals(self, fulfillment: _Fulfillment | None) -> Signals | None:
        sent = self.status.signals
        if sent is None:
            return None
        mirrored = self.status.fulfillment
        if fulfillment is not None:
            acked_generation = fulfillment.status.observed_generation
        else:
            acked_generation = mirrored.observed_generation if mirrored else None
        acked: bool | None = None
        acked_at: datetime.datetime | None = None
        if sent.generation is not None and acked_generation is not None:
            acked = acked_generation >= sent.generation
        elif sent.generation is not None or sent.sent_at is not None:
            acked = False
        if acked:
            acked_at = self._acknowledged_at(sent.sent_at, fulfillment)
        return Signals(
            paused=sent.paused,
            cancelled=sent.cancelled,
            generation=sent.generation,
            sent_at=sent.sent_at,
            acknowledged_generation=acked_generation,
            acknowledged=acked,
            acknowledged_at=acked_at,
        )

    def _acknowledged_at(
        self, sent_at: datetime.datetime | None, fulfillment: _Fulfillment | None
    ) -> datetime.datetime | None:
        """When the order controller saw the acknowledgement (SignalsAcknowledged turned True after
        the signal), else the Fulfillment's first transition after it."""
        condition = _condition(self.status.conditions, "SignalsAcknowledged")
        if (
            condition is not None
            and condition.status is ConditionStatus.TRUE
            and (sent_at is None or condition.last_transition_time >= sent_at)
        ):
            return condition.last_transition_time
        if fulfillment is not None and sent_at is not None:
            after = [entry.time for entry in fulfillment.status.history if entry.time >= sent_at]
            return min(after) if after else None
        return None

    def summary(self, namespace: str, fulfillment: _Fulfillment | None, events: int) -> Summary:
        s = self.status
        mirrored = s.fulfillment
        address = _address(self.spec.get("shippingAddress"))
        return Summary(
            kind=ORDER,
            name=self.name,
            namespace=namespace,
            exists=True,
            uid=self.uid,
            created=self.meta.created,
            deleting=self.meta.deleting,
            generation=self.meta.generation,
            observed_generation=s.observed_generation,
            phase=s.phase.value,
            percent=mirrored.percent if mirrored else None,
            current_step=mirrored.current_step if mirrored else None,
            paused=mirrored.paused if mirrored else None,
            tracking_number=mirrored.tracking_number if mirrored else None,
            completed_at=s.completed_at,
            due_at=s.due_at,
            deadline_exceeded_at=s.deadline_exceeded_at,
            ready=_view(_condition(s.conditions, "Ready")),
            stalled=_view(_condition(s.conditions, "Stalled")),
            conditions=tuple(v for v in map(_view, s.conditions) if v is not None),
            signals=self.signals(fulfillment),
            target=(mirrored.target if mirrored and mirrored.target else None) or self.spec.get("target"),
            shipping_address=one_line(address) if address else None,
            events=events,
        )


@dataclasses.dataclass(frozen=True)
class _Fulfillment(_Named):
    meta: _Meta
    spec: Mapping[str, Any]
    status: FulfillmentStatus

    @property
    def order_ref(self) -> tuple[str, str] | None:
        ref = self.spec.get("orderRef")
        if not isinstance(ref, Mapping) or not ref.get("name"):
            return None
        return str(ref["name"]), str(ref.get("uid", ""))

    @classmethod
    def read(cls, body: Mapping[str, Any], notes: list[str]) -> _Fulfillment:
        meta = _Meta.of(body)
        status = _parse(FulfillmentStatus, body.get("status"), f"Fulfillment {meta.name}'s status", notes)
        return cls(meta, body.get("spec") or {}, status)

    def rows(self) -> list[_Draft]:
        rows: list[_Draft] = []
        s = self.status
        if self.meta.created:
            ref = self.order_ref
            by = f"for Order {ref[0]}" if ref else "by hand (no Order)"
            started = "started" if self.spec.get("started") else "not started (spec.started=false)"
            rows.append(_Draft(self.meta.created, FULFILLMENT, "created", "Created", f"{by}; {started}"))
        if self.meta.deleting:
            rows.append(_Draft(self.meta.deleting, FULFILLMENT, "deleted", "Deletion requested", ""))
        previous = self.meta.created
        history: list[HistoryEntry] = sorted(s.history, key=lambda entry: entry.time)
        if s.started_at is not None and not any(entry.reason == "Started" for entry in history):
            # Older than the bounded history: status.startedAt still tells when it started.
            rows.append(_Draft(s.started_at, FULFILLMENT, "history", "Started", "(from status.startedAt)"))
        for entry in history:
            duration = _seconds(entry.time - previous) if previous else None
            detail = f"{entry.message} (phase {entry.phase})" if entry.message else f"phase {entry.phase}"
            rows.append(
                _Draft(entry.time, FULFILLMENT, "history", entry.reason, detail, duration, folds=(entry.reason,))
            )
            previous = entry.time
        rows += _condition_rows(FULFILLMENT, s.conditions)
        return rows

    def summary(self, namespace: str, now: datetime.datetime, events: int) -> Summary:
        s = self.status
        progress = s.progress
        step = None
        if s.step_started_at is not None and not s.phase.terminal:
            running = (now - s.step_resumed_at).total_seconds() if s.step_resumed_at else 0.0
            step = Step(s.phase.value, s.step_elapsed_seconds + max(0.0, running), s.paused)
        address = s.shipping_address or _address(self.spec.get("shippingAddress"))
        ref = self.order_ref
        generation = self.meta.generation
        acknowledged = (
            None if generation is None or s.observed_generation is None else s.observed_generation >= generation
        )
        return Summary(
            kind=FULFILLMENT,
            name=self.name,
            namespace=namespace,
            exists=True,
            uid=self.uid,
            created=self.meta.created,
            deleting=self.meta.deleting,
            generation=generation,
            observed_generation=s.observed_generation,
            phase=s.phase.value if s.observed_generation is not None or s.history else None,
            percent=progress.percent if progress else None,
            current_step=progress.current_step if progress else None,
            completed_steps=progress.completed_steps if progress else None,
            total_steps=progress.total_steps if progress else None,
            paused=s.paused,
            tracking_number=s.tracking_number,
            completed_at=s.completed_at,
            due_at=s.due_at,
            failure_reason=s.failure_reason,
            ready=_view(_condition(s.conditions, "Ready")),
            stalled=_view(_condition(s.conditions, "Stalled")),
            conditions=tuple(v for v in map(_view, s.conditions) if v is not None),
            signals=Signals(
                paused=_spec_bool(self.spec, "paused"),
                cancelled=_spec_bool(self.spec, "cancelled"),
                generation=generation,
                sent_at=None,
                acknowledged_generation=s.observed_generation,
                acknowledged=acknowledged,
                acknowledged_at=None,
            ),
            step=step,
            order_ref=ref[0] if ref else None,
            shipping_address=one_line(address) if address else None,
            events=events,
            history_truncated=len(s.history) >= HISTORY_LIMIT,
        )


def _spec_bool(spec: Mapping[str, Any], field: str) -> bool:
    return bool(spec.get(field, False))


def _condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def _view(condition: Condition | None) -> ConditionView | None:
    if condition is None:
        return None
    return ConditionView(
        condition.type, condition.status.value, condition.reason, condition.message, condition.last_transition_time
    )


def _condition_rows(obj: str, conditions: list[Condition]) -> list[_Draft]:
    """Each condition's last transition, unless it says nothing happened (see _WRONG)."""
    if not conditions:
        return []
    first_write = min(c.last_transition_time for c in conditions)
    rows = []
    for c in conditions:
        state = (c.type, c.status.value)
        if (c.type, c.reason) in _COVERED or state in _TOLD_ELSEWHERE:
            continue
        if c.last_transition_time <= first_write and state not in _WRONG:
            continue
        detail = f"{c.reason}: {c.message}" if c.message else c.reason
        rows.append(
            _Draft(c.last_transition_time, obj, "condition", f"{c.type}={c.status.value}", detail, folds=(c.reason,))
        )
    return rows


# -- Events -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Event:
    time: datetime.datetime
    object: str
    type: str
    reason: str
    message: str
    count: int
    last: datetime.datetime | None


def _event(raw: Mapping[str, Any], uids: Mapping[str, str], names: Mapping[str, str | None]) -> _Event | None:
    """An Event of one of the two objects, or None (another object, or an earlier one of the same name)."""
    involved = raw.get("involvedObject") or raw.get("regarding") or {}
    kind = involved.get("kind")
    if kind not in (ORDER, FULFILLMENT) or not str(involved.get("apiVersion", GROUP)).startswith(GROUP):
        return None
    uid = involved.get("uid")
    if uid:
        if uids.get(uid) != kind:
            return None
    elif involved.get("name") != names.get(kind):
        return None
    meta = raw.get("metadata") or {}
    first = (
        _time(raw.get("eventTime"))
        or _time(raw.get("firstTimestamp"))
        or _time(raw.get("lastTimestamp"))
        or _time(meta.get("creationTimestamp"))
    )
    if first is None:
        return None
    series = raw.get("series") or {}
    count = int(series.get("count") or raw.get("count") or 1)
    last = _time(raw.get("lastTimestamp")) or _time(series.get("lastObservedTime"))
    return _Event(
        time=first,
        object=kind,
        type=str(raw.get("type") or "Normal"),
        reason=str(raw.get("reason") or ""),
        message=str(raw.get("message") or raw.get("note") or ""),
        count=count,
        last=last,
    )


def _fold(rows: list[_Draft], events: list[_Event]) -> list[_Draft]:
    """Fold each Event into the row it repeats; the others become rows of their own.

    An Event is posted after the write it tells of, by the same controller (the same clock), with
    its time cut to whole seconds: it can be a row's only from the row's second on, and a little
    after. Pairs are made closest first, so two Events of one reason close together (a pause and a
    resume sent within a second) each find their own row, and one whose message contradicts a
    row (``paused=true`` for a row of ``paused=false``) is never taken for it."""
    pairs: list[tuple[tuple[bool, float, float], int, int]] = []
    for e, event in enumerate(events):
        for r, row in enumerate(rows):
            if row.object != event.object or event.reason not in row.folds:
                continue
            if any(token in event.message for token in row.conflicts):
                continue
            second = row.time.replace(microsecond=0)
            if not second - _FOLD_SLACK <= event.time <= row.time + _FOLD_AFTER:
                continue
            late = abs((event.time - second).total_seconds())
            pairs.append(((_RANK[row.kind] >= _RANK["condition"], late, -event.time.timestamp()), e, r))
    folded: set[int] = set()
    for _, e, r in sorted(pairs):
        if e in folded or rows[r].folded:
            continue
        rows[r].folded = True
        folded.add(e)
    extra: list[_Draft] = []
    for e, event in enumerate(events):
        if e in folded:
            continue
        detail = ("Warning: " if event.type == "Warning" else "") + event.message
        if event.count > 1:
            detail += f" ({event.count} times" + (f", last at {_iso(event.last)})" if event.last else ")")
        extra.append(_Draft(event.time, event.object, "event", event.reason, detail, whole_seconds=True))
    return extra


# -- the timeline -----------------------------------------------------------------------------


def _finish(rows: list[_Draft], redact: _Redactor) -> tuple[Row, ...]:
    ordered = sorted(rows, key=lambda r: (r.time, _RANK[r.kind], r.object != ORDER))
    if not ordered:
        return ()
    start = ordered[0].time
    return tuple(
        Row(
            time=r.time,
            object=r.object,
            kind=r.kind,
            what=r.what,
            detail=redact(r.detail),
            since_start=_seconds(r.time - start),
            duration=r.duration,
            whole_seconds=r.whole_seconds or r.kind in ("created", "deleted"),
        )
        for r in ordered
    )


class _Redactor:
    """Replaces the addresses and e-mail addresses of both objects in a timeline detail.

    The known values are replaced wherever they appear; what follows "shipped to" or "address
    changed to" (an address no object holds any more) is replaced too."""

    _TEMPLATES = re.compile(r"((?:shipped|address changed|address changes?) to )(?!\[address\])[^;(]*[^;(\s]", re.I)
    _RUN = re.compile(r"\[redacted\](?:[ ,]+(?:\[redacted\]|[A-Z]{2}\b))*")
    _EMAIL = re.compile(r"[^@\s;,()]+@[^@\s;,()]+\.[A-Za-z]{2,}")

    def __init__(self, order: _Order | None, fulfillment: _Fulfillment | None) -> None:
        addresses: list[ShippingAddress | None] = []
        emails: list[str] = []
        if order is not None:
            addresses.append(_address(order.spec.get("shippingAddress")))
            addresses.append(order.status.signals.shipping_address if order.status.signals else None)
            emails.append(str(order.spec.get("customerEmail") or ""))
        if fulfillment is not None:
            addresses.append(_address(fulfillment.spec.get("shippingAddress")))
            addresses.append(fulfillment.status.shipping_address)
            emails.append(str(fulfillment.spec.get("customerEmail") or ""))
        values: set[str] = set()
        for a in addresses:
            if a is None:
                continue
            values.add(one_line(a))
            values.update(v for v in (a.name, a.street, a.line2, a.city, a.postal_code, a.region) if v)
        words = sorted((v.strip() for v in values if len(v.strip()) >= 2), key=len, reverse=True)
        self._values = [re.compile(r"(?<!\w)" + re.escape(v) + r"(?!\w)") for v in words]
        self._emails = [e for e in emails if e]

    def __call__(self, text: str) -> str:
        for email in self._emails:
            text = text.replace(email, "[email]")
        text = self._EMAIL.sub("[email]", text)
        for pattern in self._values:
            text = pattern.sub("[redacted]", text)
        text = self._RUN.sub("[address]", text)
        return self._TEMPLATES.sub(lambda m: m.group(1) + "[address]", text)


# -- small helpers ----------------------------------------------------------------------------


def _time(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _iso(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    utc = value.astimezone(datetime.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _seconds(delta: datetime.timedelta) -> float:
    return delta.total_seconds()


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _bool(value: bool | None) -> str:
    return "?" if value is None else str(value).lower()
