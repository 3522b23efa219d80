"""The rows each object tells of itself: creation and deletion, the signal sent and its
acknowledgement, ``status.history``, the Order's deadline and end, and the conditions' transitions.

A row is a :class:`Draft` until :func:`orderflow.describe.timeline.describe` has folded the Events
into it and sorted it into the timeline. No I/O.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping

from orderflow.api.common import Condition, HistoryEntry
from orderflow.describe.objects import FulfillmentObject, OrderObject, find_condition
from orderflow.describe.shape import FULFILLMENT, ORDER, iso

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


@dataclasses.dataclass
class Draft:
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


def order_rows(order: OrderObject, fulfillment: FulfillmentObject | None) -> list[Draft]:
    """The Order's creation and deletion, the signal it last sent and its acknowledgement, its
    deadline, its end and its conditions."""
    rows: list[Draft] = []
    if order.meta.created:
        items = order.spec.get("items") or []
        units = sum(int(i.get("quantity", 0)) for i in items if isinstance(i, Mapping))
        policy = order.spec.get("deletionPolicy", "Cancel")
        detail = f"{_count(units, 'unit')} of {_count(len(items), 'SKU')}; deletionPolicy {policy}"
        rows.append(Draft(order.meta.created, ORDER, "created", "Created", detail))
    if order.meta.deleting:
        detail = f"deletionPolicy {order.spec.get('deletionPolicy', 'Cancel')}"
        rows.append(Draft(order.meta.deleting, ORDER, "deleted", "Deletion requested", detail))
    signals = order.signals(fulfillment)
    if signals is not None and signals.sent_at is not None:
        first = signals.generation == 1
        target = f"Fulfillment generation {signals.generation}" if signals.generation else "the Fulfillment"
        values = f"paused={_bool(signals.paused)}, cancelled={_bool(signals.cancelled)}"
        rows.append(
            Draft(
                signals.sent_at,
                ORDER,
                "signal",
                "Signal sent",
                f"{'created and started' if first else 'sent to'} {target}: {values}",
                folds=("FulfillmentCreated",) if first else ("SignalSent",),
                conflicts=(f"paused={_bool(not signals.paused)}",) + (() if signals.cancelled else ("cancelled=true",)),
            )
        )
        if signals.acknowledged and signals.acknowledged_at is not None:
            rows.append(
                Draft(
                    signals.acknowledged_at,
                    FULFILLMENT,
                    "acknowledged",
                    "Signal acknowledged",
                    f"status.observedGeneration {signals.acknowledged_generation} reached generation "
                    f"{signals.generation}",
                    duration=_seconds(signals.acknowledged_at - signals.sent_at),
                )
            )
    exceeded, due = order.status.deadline_exceeded_at, order.status.due_at
    if exceeded is not None and due is not None:
        rows.append(
            Draft(
                exceeded,
                ORDER,
                "phase",
                "DeadlineExceeded",
                f"due at {iso(due)} (spec.activeDeadlineSeconds), not shipped: cancelling the Fulfillment",
                folds=("DeadlineExceeded",),
            )
        )
    if order.status.completed_at is not None:
        since = _seconds(order.status.completed_at - order.meta.created) if order.meta.created else None
        ready = find_condition(order.status.conditions, "Ready")
        phase = order.status.phase.value
        rows.append(
            Draft(
                order.status.completed_at,
                ORDER,
                "phase",
                phase,
                f"the order is {phase}" + (f": {ready.message}" if ready else ""),
                duration=since,
                folds=(phase,),
            )
        )
    rows += condition_rows(ORDER, order.status.conditions)
    return rows


def fulfillment_rows(fulfillment: FulfillmentObject) -> list[Draft]:
    """The Fulfillment's creation and deletion, each ``status.history`` entry and its conditions."""
    rows: list[Draft] = []
    s = fulfillment.status
    if fulfillment.meta.created:
        ref = fulfillment.order_ref
        by = f"for Order {ref[0]}" if ref else "by hand (no Order)"
        started = "started" if fulfillment.spec.get("started") else "not started (spec.started=false)"
        rows.append(Draft(fulfillment.meta.created, FULFILLMENT, "created", "Created", f"{by}; {started}"))
    if fulfillment.meta.deleting:
        rows.append(Draft(fulfillment.meta.deleting, FULFILLMENT, "deleted", "Deletion requested", ""))
    previous = fulfillment.meta.created
    history: list[HistoryEntry] = sorted(s.history, key=lambda entry: entry.time)
    if s.started_at is not None and not any(entry.reason == "Started" for entry in history):
        # Older than the bounded history: status.startedAt still tells when it started.
        rows.append(Draft(s.started_at, FULFILLMENT, "history", "Started", "(from status.startedAt)"))
    for entry in history:
        duration = _seconds(entry.time - previous) if previous else None
        detail = f"{entry.message} (phase {entry.phase})" if entry.message else f"phase {entry.phase}"
        rows.append(Draft(entry.time, FULFILLMENT, "history", entry.reason, detail, duration, folds=(entry.reason,)))
        previous = entry.time
    rows += condition_rows(FULFILLMENT, s.conditions)
    return rows


def condition_rows(obj: str, conditions: list[Condition]) -> list[Draft]:
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
            Draft(c.last_transition_time, obj, "condition", f"{c.type}={c.status.value}", detail, folds=(c.reason,))
        )
    return rows


def _seconds(delta: datetime.timedelta) -> float:
    return delta.total_seconds()


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _bool(value: bool | None) -> str:
    return "?" if value is None else str(value).lower()
