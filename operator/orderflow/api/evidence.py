"""What a finished Fulfillment's status must carry to be believed, by either controller.

Status is input: anyone with write access to ``fulfillments/status`` (or a restored backup) can
write a phase. A terminal phase has consequences elsewhere — the Order completes, retention
deletes — so it is taken only with the evidence the fulfillment controller always writes with
it. Part of the contract, so the order controller checks it without the fulfillment's code.
"""

from __future__ import annotations

import hashlib

from orderflow.api.fulfillment import FulfillmentPhase, FulfillmentStatus


def tracking_number(uid: str) -> str:
    """Deterministic per object, so a retried write can never issue a second number."""
    return "OF" + hashlib.sha256(uid.encode()).hexdigest()[:12].upper()


def unbelievable(status: FulfillmentStatus, uid: str, cancel_asked: bool) -> str | None:
    """Why a Fulfillment's terminal ``status`` cannot be believed (a sentence that starts after
    its name), or None. The rule, documented in docs/status.md:

    - ``Shipped`` needs the tracking number its uid gives and, as its newest history entry, the
      ``Shipped`` transition at ``completedAt``. Nothing is added to the history after shipping,
      so the bounded history (the last 20) always keeps that entry. Earlier entries (Started,
      Picked) are not required: pauses can push them out of the last 20, and a controller that
      went on from a running step someone wrote by hand (no start recorded) ships it rightly.
    - ``Cancelled`` needs ``spec.cancelled`` (``cancel_asked``): only the signal cancels.

    Forged values are not repeated in the sentence: it goes into conditions, Events and logs.
    """
    if status.phase is FulfillmentPhase.SHIPPED:
        last = status.history[-1] if status.history else None
        if not status.tracking_number:
            return "reports Shipped without a tracking number"
        if status.tracking_number != tracking_number(uid):
            return "reports Shipped with a tracking number that is not its own"
        if last is None or last.reason != "Shipped" or last.phase != FulfillmentPhase.SHIPPED.value:
            return "reports Shipped without the Shipped transition in its history"
        if status.completed_at != last.time:
            return "reports Shipped with a completedAt that is not when it shipped"
    if status.phase is FulfillmentPhase.CANCELLED and not cancel_asked:
        return "reports Cancelled, but its spec.cancelled is not true"
    return None
