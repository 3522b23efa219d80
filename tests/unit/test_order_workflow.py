"""The order workflow core: the Order and its Fulfillment as last seen -> status, actions, events."""

from __future__ import annotations

import datetime
from typing import Any

from orderflow.api.fulfillment import FulfillmentStatus
from orderflow.api.order import OrderPhase, OrderSpec, OrderStatus
from orderflow.order import workflow as wf

T0 = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)
ADDRESS = {"name": "Ada", "street": "1 Way", "city": "London", "postalCode": "N1", "country": "GB"}
ACK = 30.0


def order(status: OrderStatus | None = None, generation: int = 1, **spec: Any) -> wf.ObservedOrder:
    base: dict[str, Any] = {
        "customerEmail": "a@example.com",
        "items": [{"sku": "A", "quantity": 1}],
        "shippingAddress": ADDRESS,
    }
    base.update(spec)
    return wf.ObservedOrder(
        name="o1",
        namespace="ns",
        uid="order-uid",
        generation=generation,
        spec=OrderSpec.model_validate(base),
        status=status or OrderStatus(),
    )


def fulfillment(
    phase: str = "Picking", generation: int = 1, observed: int | None = 1, order_uid: str = "order-uid", **more: Any
) -> wf.ObservedFulfillment:
    status: dict[str, Any] = {"phase": phase, "observedGeneration": observed, **more}
    if observed is None:
        status = {}
    return wf.ObservedFulfillment(
        name="o1",
        uid="f-uid",
        generation=generation,
        order_uid=order_uid,
        paused=more.get("paused", False),
        cancelled=False,
        shipping_address=ADDRESS,
        status=FulfillmentStatus.model_validate(status),
    )


def cond(status: OrderStatus, type_: str) -> tuple[str, str]:
    c = next(c for c in status.conditions if c.type == type_)
    return c.status.value, c.reason


def created() -> OrderStatus:
    """The status after the first reconcile: Fulfillment created, started, initial signals sent."""
    decision = wf.decide(order(), None, T0, ACK)
    assert decision.status is not None
    return decision.status


def test_first_reconcile_adds_finalizer_creates_and_starts_the_fulfillment() -> None:
    o = order()
    o = wf.ObservedOrder(**{**o.__dict__, "has_finalizer": False})
    decision = wf.decide(o, None, T0, ACK)
    kinds = [type(a) for a in decision.actions]
    assert kinds == [wf.AddFinalizer, wf.CreateFulfillment]
    create = decision.actions[1]
    assert isinstance(create, wf.CreateFulfillment)
    spec = create.body["spec"]
    assert spec["started"] is True
    assert spec["orderRef"] == {"name": "o1", "uid": "order-uid"}
    assert create.body["metadata"]["labels"][wf.ORDER_LABEL] == "o1"
    assert decision.status is not None
    assert decision.status.phase is OrderPhase.FULFILLING
    assert decision.status.signals is not None
    assert decision.status.signals.generation == 1
    assert cond(decision.status, "SignalsAcknowledged") == ("False", "Waiting")
    assert decision.requeue_after == ACK


def test_status_mirrors_the_fulfillment_and_completes_when_shipped() -> None:
    status = created()
    shipped = fulfillment("Shipped", trackingNumber="OF1", progress={
        "currentStep": "Shipped", "completedSteps": 3, "totalSteps": 3, "percent": 100})  # fmt: skip
    decision = wf.decide(order(status), shipped, T0, ACK)
    assert decision.actions == ()
    s = decision.status
    assert s is not None
    assert s.phase is OrderPhase.COMPLETED
    assert s.fulfillment is not None
    assert s.fulfillment.tracking_number == "OF1"
    assert s.fulfillment.percent == 100
    assert cond(s, "Ready") == ("True", "Completed")
    assert cond(s, "SignalsAcknowledged") == ("True", "Acknowledged")
    assert [e.reason for e in decision.events] == ["Completed"]


def test_a_changed_desire_is_sent_once_as_a_spec_patch() -> None:
    status = created()
    decision = wf.decide(order(status, generation=2, paused=True), fulfillment(), T0, ACK)
    assert decision.actions == (wf.SendSignals({"paused": True}),)
    assert decision.status is not None
    assert decision.status.signals is not None
    assert decision.status.signals.paused is True
    # the same desire again, once recorded as sent: nothing more is sent
    again = wf.decide(order(decision.status, generation=2, paused=True), fulfillment(generation=2), T0, ACK)
    assert again.actions == ()


def test_a_direct_patch_on_the_fulfillment_stands_until_the_order_asks_otherwise() -> None:
    status = created()
    paused_by_hand = fulfillment(generation=2, observed=2, paused=True)
    decision = wf.decide(order(status), paused_by_hand, T0, ACK)
    assert decision.actions == ()  # the Order still wants paused=false, as it last sent: no fight
    assert decision.status is not None
    assert decision.status.fulfillment is not None
    assert decision.status.fulfillment.paused is True
    assert cond(decision.status, "Paused") == ("True", "FulfillmentPaused")


def test_address_change_and_cancel_are_signals() -> None:
    status = created()
    moved = {**ADDRESS, "city": "Leeds"}
    decision = wf.decide(order(status, shippingAddress=moved, cancelled=True), fulfillment(), T0, ACK)
    (action,) = decision.actions
    assert isinstance(action, wf.SendSignals)
    assert action.spec_patch == {"cancelled": True, "shippingAddress": {**ADDRESS, "city": "Leeds"}}


def test_unacknowledged_signal_becomes_a_condition_after_the_timeout() -> None:
    status = created()
    silent = fulfillment("Pending", observed=None)
    waiting = wf.decide(order(status), silent, T0 + datetime.timedelta(seconds=10), ACK)
    assert waiting.status is not None
    assert cond(waiting.status, "SignalsAcknowledged") == ("False", "Waiting")
    assert waiting.requeue_after == 20
    late = wf.decide(order(waiting.status), silent, T0 + datetime.timedelta(seconds=31), ACK)
    assert late.status is not None
    assert cond(late.status, "SignalsAcknowledged") == ("False", "NotAcknowledged")
    assert [e.reason for e in late.events] == ["NotAcknowledged"]


def test_invalid_order_is_reported_and_recovers_when_fixed() -> None:
    too_many = [{"sku": f"S{i}", "quantity": 600} for i in range(2)]
    bad = wf.decide(order(items=too_many), None, T0, ACK)
    assert bad.status is not None
    assert bad.status.phase is OrderPhase.INVALID
    assert cond(bad.status, "Stalled") == ("True", "InvalidSpec")
    assert not any(isinstance(a, wf.CreateFulfillment) for a in bad.actions)
    assert "1200 units" in bad.events[0].message
    fixed = wf.decide(order(bad.status, generation=2), None, T0, ACK)
    assert any(isinstance(a, wf.CreateFulfillment) for a in fixed.actions)


def test_cancelled_before_creation_creates_nothing() -> None:
    decision = wf.decide(order(cancelled=True), None, T0, ACK)
    assert decision.status is not None
    assert decision.status.phase is OrderPhase.CANCELLED
    assert decision.actions == ()


def test_a_missing_fulfillment_is_reported_not_recreated() -> None:
    decision = wf.decide(order(created()), None, T0, ACK)
    assert decision.actions == ()
    assert decision.status is not None
    assert cond(decision.status, "Stalled") == ("True", "FulfillmentMissing")


def test_a_fulfillment_of_another_order_is_not_adopted() -> None:
    decision = wf.decide(order(), fulfillment(order_uid="someone-else"), T0, ACK)
    assert decision.actions == ()
    assert decision.status is not None
    assert cond(decision.status, "Stalled") == ("True", "FulfillmentNameTaken")


def test_an_existing_fulfillment_of_this_order_is_adopted() -> None:
    decision = wf.decide(order(), fulfillment(), T0, ACK)
    assert not any(isinstance(a, wf.CreateFulfillment) for a in decision.actions)
    assert decision.status is not None
    assert decision.status.fulfillment is not None


def test_deletion_follows_the_policy() -> None:
    def deleting(policy: str) -> wf.ObservedOrder:
        o = order(created(), deletionPolicy=policy)
        return wf.ObservedOrder(**{**o.__dict__, "deleting": True})

    assert wf.decide(deleting("Cancel"), fulfillment(), T0, ACK).actions == (
        wf.SendSignals({"cancelled": True}),
        wf.RemoveFinalizer(),
    )
    assert wf.decide(deleting("Orphan"), fulfillment(), T0, ACK).actions == (wf.RemoveFinalizer(),)
    assert wf.decide(deleting("Delete"), fulfillment(), T0, ACK).actions == (
        wf.DeleteFulfillment(),
        wf.RemoveFinalizer(),
    )
    # a finished fulfillment needs no cancel
    assert wf.decide(deleting("Cancel"), fulfillment("Shipped"), T0, ACK).actions == (wf.RemoveFinalizer(),)


def test_a_refused_signal_shows_on_the_order() -> None:
    refused = fulfillment(
        "Shipped",
        conditions=[{"type": "Accepted", "status": "False", "reason": "CancelRefused",
                     "message": "cannot cancel: already shipped", "lastTransitionTime": T0.isoformat()}],
    )  # fmt: skip
    decision = wf.decide(order(created()), refused, T0, ACK)
    assert decision.status is not None
    assert cond(decision.status, "SignalsAccepted") == ("False", "CancelRefused")
    assert "CancelRefused" in [e.reason for e in decision.events]
