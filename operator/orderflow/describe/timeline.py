"""An Order's and its Fulfillment's story as one timeline: objects in, summaries and rows out. No I/O.

The story is spread over two objects and their Events: the Order's status (phase, conditions, the
signals it last sent), the Fulfillment's ``status.history`` and conditions, its ``generation`` vs
``status.observedGeneration`` (has the last signal been acknowledged?), and the Events whose
``involvedObject`` is either of them. :func:`describe` pairs the objects, takes each one's rows
(:mod:`~orderflow.describe.rows`), folds the Events into them (:mod:`~orderflow.describe.folding`),
redacts the details (:mod:`~orderflow.describe.redaction`) and sorts them by time; the summaries come
from :mod:`~orderflow.describe.objects`, and the answer's shape is :mod:`~orderflow.describe.shape`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from orderflow.describe.folding import event_of, fold
from orderflow.describe.objects import FulfillmentObject, OrderObject, absent_fulfillment
from orderflow.describe.redaction import Redactor
from orderflow.describe.rows import Draft, fulfillment_rows, order_rows
from orderflow.describe.shape import FULFILLMENT, ORDER, RANK, Description, Row, Snapshot, Summary


def describe(snapshot: Snapshot, now: datetime.datetime) -> Description:
    """The summaries of both objects and one timeline of everything known to have happened."""
    notes: list[str] = []
    order = OrderObject.read(snapshot.order, notes) if snapshot.order else None
    fulfillment = FulfillmentObject.read(snapshot.fulfillment, notes) if snapshot.fulfillment else None

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

    redact = Redactor(order, fulfillment)
    rows: list[Draft] = []
    if order is not None:
        rows += order_rows(order, fulfillment)
    if fulfillment is not None:
        rows += fulfillment_rows(fulfillment)

    uids = {}
    if order is not None:
        uids[order.uid] = ORDER
        if order.status.fulfillment and order.status.fulfillment.uid:
            uids[order.status.fulfillment.uid] = FULFILLMENT  # also when it is gone
    if fulfillment is not None:
        uids[fulfillment.uid] = FULFILLMENT
    names = {ORDER: order.name if order else None, FULFILLMENT: fulfillment.name if fulfillment else None}
    events = [e for e in (event_of(raw, uids, names) for raw in snapshot.events) if e is not None]
    rows += fold(rows, events)
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
        fulfillment_summary = absent_fulfillment(snapshot, order, fulfillment_note, counts[FULFILLMENT], foreign)
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


def _ours(order: OrderObject, fulfillment: FulfillmentObject) -> bool:
    if fulfillment.order_ref is None or fulfillment.order_ref[1] != order.uid:
        return False
    recorded = order.status.fulfillment.uid if order.status.fulfillment else None
    return recorded is None or recorded == fulfillment.uid


def _order_name(snapshot: Snapshot, fulfillment: FulfillmentObject | None) -> str | None:
    if snapshot.subject == "order":
        return snapshot.name
    return fulfillment.order_ref[0] if fulfillment and fulfillment.order_ref else None


def _fulfillment_note(order: OrderObject, fulfillment: FulfillmentObject | None) -> str | None:
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


def _finish(rows: list[Draft], redact: Redactor) -> tuple[Row, ...]:
    ordered = sorted(rows, key=lambda r: (r.time, RANK[r.kind], r.object != ORDER))
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
            since_start=(r.time - start).total_seconds(),
            duration=r.duration,
            whole_seconds=r.whole_seconds or r.kind in ("created", "deleted"),
        )
        for r in ordered
    )
