"""The story the describe tests tell, as the API server would hold it: an Order paused, resumed and
completed, its Fulfillment shipped, and their Events; also the same story in another cluster, and one
full of hostile text. Plain builders, shared by the test files of this folder."""

from __future__ import annotations

import datetime
from typing import Any

from orderflow.api.common import Condition, ConditionStatus, HistoryEntry, ShippingAddress
from orderflow.api.fulfillment import FulfillmentPhase, FulfillmentProgress, FulfillmentStatus
from orderflow.api.order import FulfillmentState, OrderPhase, OrderStatus, SentSignals
from orderflow.describe.shape import Description, Snapshot
from orderflow.describe.timeline import describe

T0 = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)
ADDRESS = ShippingAddress(name="Ada Lovelace", street="12 Square", city="London", postal_code="SW1Y 4JH", country="GB")
EMAIL = "ada@example.com"
TRACKING = "OF0123456789AB"
T, F = ConditionStatus.TRUE, ConditionStatus.FALSE


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    """A metadata or Event time as the API server keeps it: whole seconds."""
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(type_: str, status: ConditionStatus, reason: str, message: str, seconds: float) -> Condition:
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=3,
        last_transition_time=at(seconds),
    )


def meta(name: str, uid: str, created: float, generation: int = 3, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "shop",
        "uid": uid,
        "generation": generation,
        "creationTimestamp": stamp(created),
        **more,
    }


def spec(**more: Any) -> dict[str, Any]:
    return {
        "customerEmail": EMAIL,
        "items": [{"sku": "BOOK-1", "quantity": 1}, {"sku": "PEN-1", "quantity": 2}],
        "shippingAddress": ADDRESS.wire(),
        **more,
    }


def completed_order() -> dict[str, Any]:
    """An Order paused at 1.1 s, resumed at 3.3 s, completed at 5.6 s."""
    status = OrderStatus(
        phase=OrderPhase.COMPLETED,
        observed_generation=3,
        completed_at=at(5.6),
        fulfillment=FulfillmentState(
            name="o1",
            uid="ful-uid",
            phase="Shipped",
            percent=100,
            current_step="Shipped",
            paused=False,
            tracking_number=TRACKING,
            generation=3,
            observed_generation=3,
        ),
        signals=SentSignals(paused=False, cancelled=False, shipping_address=ADDRESS, generation=3, sent_at=at(3.3)),
        conditions=[
            cond("Ready", T, "Completed", f"shipped; tracking number {TRACKING}", 5.6),
            cond("Reconciling", F, "Completed", "the order is complete", 5.6),
            cond("Stalled", F, "NoError", "no error", 0.2),
            cond("Paused", F, "NotPaused", "not paused", 3.5),
            cond("SignalsAcknowledged", T, "Acknowledged", "the fulfillment acknowledged generation 3", 3.5),
            cond("SignalsAccepted", T, "Accepted", "the fulfillment took every signal", 0.6),
        ],
    )
    return {
        "apiVersion": "orderflow.dev/v1alpha1",
        "kind": "Order",
        "metadata": meta("o1", "order-uid", 0),
        "spec": spec(paused=False),
        "status": status.wire(),
    }


def shipped_fulfillment(order_uid: str | None = "order-uid") -> dict[str, Any]:
    status = FulfillmentStatus(
        phase=FulfillmentPhase.SHIPPED,
        progress=FulfillmentProgress(current_step="Shipped", completed_steps=3, total_steps=3, percent=100),
        observed_generation=3,
        started_at=at(0.5),
        completed_at=at(5.5),
        tracking_number=TRACKING,
        shipping_address=ADDRESS,
        history=[
            HistoryEntry(time=at(0.5), phase="Picking", reason="Started", message="started; picking items"),
            HistoryEntry(time=at(1.2), phase="Picking", reason="Paused", message="paused during Picking"),
            HistoryEntry(time=at(3.4), phase="Picking", reason="Resumed", message="resumed Picking"),
            HistoryEntry(time=at(5.0), phase="Packing", reason="Picked", message="items picked; packing"),
            HistoryEntry(
                time=at(5.5),
                phase="Shipped",
                reason="Shipped",
                message="shipped to Ada Lovelace, 12 Square, SW1Y 4JH London, GB",
            ),
        ],
        conditions=[
            cond("Ready", T, "Shipped", f"shipped; tracking number {TRACKING}", 5.5),
            cond("Reconciling", F, "Finished", "the fulfillment is Shipped", 5.5),
            cond("Stalled", F, "NoError", "no error", 0.5),
            cond("Paused", F, "NotPaused", "not paused", 3.4),
            cond("Accepted", T, "SignalsApplied", "every signal in spec has been applied", 0.5),
        ],
    )
    extra = {"orderRef": {"name": "o1", "uid": order_uid}} if order_uid else {}
    return {
        "apiVersion": "orderflow.dev/v1alpha1",
        "kind": "Fulfillment",
        "metadata": meta("o1", "ful-uid", 0.4),
        "spec": spec(started=True, paused=False, **extra),
        "status": status.wire(),
    }


def event(kind: str, uid: str, reason: str, message: str, seconds: float, type_: str = "Normal") -> dict[str, Any]:
    return {
        "metadata": {"name": f"o1.{reason.lower()}{seconds}", "namespace": "shop"},
        "involvedObject": {
            "apiVersion": "orderflow.dev/v1alpha1",
            "kind": kind,
            "name": "o1",
            "namespace": "shop",
            "uid": uid,
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "firstTimestamp": stamp(seconds),
        "lastTimestamp": stamp(seconds),
        "count": 1,
    }


def events() -> tuple[dict[str, Any], ...]:
    return (
        event("Order", "order-uid", "FulfillmentCreated", "created and started Fulfillment o1", 0.1),
        event("Fulfillment", "ful-uid", "Started", "started; picking items", 0.6),
        event("Order", "order-uid", "SignalSent", "sent paused=true to Fulfillment o1", 1.1),
        event("Fulfillment", "ful-uid", "Paused", "paused during Picking", 1.3),
        event("Order", "order-uid", "SignalSent", "sent paused=false to Fulfillment o1", 3.3),
        event("Fulfillment", "ful-uid", "Resumed", "resumed Picking", 3.5),
        event("Fulfillment", "ful-uid", "Picked", "items picked; packing", 5.0),
        event("Fulfillment", "ful-uid", "Shipped", "shipped to Ada Lovelace, 12 Square, SW1Y 4JH London, GB", 5.6),
        event("Order", "order-uid", "Completed", f"order completed: tracking number {TRACKING}", 5.7),
        # An earlier Fulfillment of the same name: not this story.
        event("Fulfillment", "old-uid", "Started", "started; picking items", -3600),
    )


def story(subject: str = "order", **overrides: Any) -> Description:
    parts: dict[str, Any] = {
        "subject": subject,
        "name": "o1",
        "namespace": "shop",
        "order": completed_order(),
        "fulfillment": shipped_fulfillment(),
        "events": events(),
    }
    parts.update(overrides)
    return describe(Snapshot(**parts), at(60))


def whats(desc: Description, kind: str | None = None) -> list[str]:
    return [f"{r.object}:{r.what}" for r in desc.timeline if kind is None or r.kind == kind]


# -- personal data --------------------------------------------------------------------------------


PERSONAL = ("Ada", "Lovelace", "12 Square", "SW1Y", "London", EMAIL)


# -- in progress ----------------------------------------------------------------------------------


def paused_fulfillment() -> dict[str, Any]:
    body = shipped_fulfillment()
    status = FulfillmentStatus.model_validate(body["status"])
    status.phase = FulfillmentPhase.PICKING
    status.paused = True
    status.history = status.history[:2]
    status.progress = FulfillmentProgress(current_step="Picking", completed_steps=0, total_steps=3, percent=0)
    status.step_started_at, status.step_elapsed_seconds, status.step_resumed_at = at(0.5), 0.7, None
    status.completed_at = status.tracking_number = None
    status.observed_generation = 1
    body["status"] = status.wire()
    body["metadata"]["generation"] = 2
    return body


# -- hostile text: whatever a person with the edit role (or status access) writes ----------------


ESC = "\x1b"
# Colours and clear-screen, a window title, an OSC 8 link, an OSC 52 clipboard write, a C1 CSI,
# DEL, a line separator, and a newline that forges a timeline row of its own.
HOSTILE = (
    f"{ESC}[31mred{ESC}[2J{ESC}]0;pwned\x07{ESC}]8;;https://evil.example/{ESC}\\click{ESC}]8;;{ESC}\\"
    f"{ESC}]52;c;ZXZpbA==\x07\x9b2J\x7f\u2028\r"
    "\n12:00:09.000  +9.000s  Order        Completed         order completed: tracking number OF1"
)
# Every character no value may bring to the screen: C0 (but the layout's own newline), DEL, C1,
# and the Unicode line and paragraph separators.
CONTROL = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\n"} | {"\u2028", "\u2029"}


def hostile_story() -> Description:
    fulfillment = shipped_fulfillment()
    fulfillment["spec"]["orderRef"]["name"] = f"o1{ESC}[8m"
    # Refused by today's schema, but an object stored before it may still carry one.
    fulfillment["spec"]["shippingAddress"] = {**ADDRESS.wire(), "name": f"Ada{ESC}]0;title\x07", "street": HOSTILE}
    fulfillment["status"]["failureMessage"] = HOSTILE
    for c in fulfillment["status"]["conditions"]:
        if c["type"] == "Stalled":
            c.update(status="True", reason="Failed", message=HOSTILE)
    bad = (
        event("Fulfillment", "ful-uid", f"Boom{ESC}[5m", HOSTILE, 7, type_="Warning"),
        event("Order", "order-uid", "Note", f"line one\nline two{ESC}[0m", 8),
    )
    return story("fulfillment", fulfillment=fulfillment, events=events() + bad)


def shown_controls(text: str) -> set[str]:
    return {c for c in text if c in CONTROL}


# -- a target in another cluster ------------------------------------------------------------------


def in_target() -> tuple[dict[str, Any], dict[str, Any]]:
    """o1 of namespace shop, its Fulfillment shop.o1 in namespace warehouse of target eu."""
    order, fulfillment = completed_order(), shipped_fulfillment()
    order["spec"]["target"] = "eu"
    order["status"]["fulfillment"].update(name="shop.o1", namespace="warehouse", target="eu")
    fulfillment["metadata"].update(name="shop.o1", namespace="warehouse")
    fulfillment["spec"]["orderRef"].update(namespace="shop", cluster="shop-eu")
    return order, fulfillment
