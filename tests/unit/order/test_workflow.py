"""The order workflow core: the Order and its Fulfillment as last seen -> status, actions, events."""

from __future__ import annotations

import datetime
import re
from typing import Any

from orderflow.api.common import ShippingAddress
from orderflow.api.evidence import tracking_number
from orderflow.api.fulfillment import FulfillmentStatus
from orderflow.api.order import OrderPhase, OrderSpec, OrderStatus
from orderflow.order import workflow as wf
from orderflow.order.mirror import fulfillment_as_read
from orderflow.order.targets import Declaration, place_of

T0 = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)
ADDRESS = {"name": "Ada", "street": "1 Way", "city": "London", "postalCode": "N1", "country": "GB"}
ACK = 30.0
HOUR = datetime.timedelta(hours=1)


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
    phase: str = "Picking",
    generation: int = 1,
    observed: int | None = 1,
    order_uid: str | None = "order-uid",
    cancelled: bool | None = None,
    **more: Any,
) -> wf.FulfillmentAsRead:
    """As its controller writes it; a Cancelled one was asked to cancel unless ``cancelled`` says not."""
    status: dict[str, Any] = {"phase": phase, "observedGeneration": observed, **more}
    if observed is None:
        status = {}
    return wf.FulfillmentAsRead(
        name="o1",
        uid="f-uid",
        generation=generation,
        order_uid=order_uid,
        paused=more.get("paused", False),
        cancelled=phase == "Cancelled" if cancelled is None else cancelled,
        shipping_address=ShippingAddress.model_validate(ADDRESS),
        status=FulfillmentStatus.model_validate(status),
    )


def completed_fulfillment(**more: Any) -> wf.FulfillmentAsRead:
    """Shipped, as the fulfillment controller writes it: its tracking number and the history to it."""
    return fulfillment(
        "Shipped",
        trackingNumber=tracking_number("f-uid"),
        startedAt=T0.isoformat(),
        completedAt=T0.isoformat(),
        history=[{"time": T0.isoformat(), "phase": "Shipped", "reason": "Shipped", "message": "shipped"}],
        **more,
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
    shipped = completed_fulfillment(progress={
        "currentStep": "Shipped", "completedSteps": 3, "totalSteps": 3, "percent": 100})  # fmt: skip
    decision = wf.decide(order(status), shipped, T0, ACK)
    assert decision.actions == ()
    s = decision.status
    assert s is not None
    assert s.phase is OrderPhase.COMPLETED
    assert s.fulfillment is not None
    assert s.fulfillment.tracking_number == tracking_number("f-uid")
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
    ready = next(c for c in late.status.conditions if c.type == "Ready")
    assert "it has no status yet" in ready.message  # says what it means, not Python's None
    assert "None" not in ready.message


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
        wf.DeleteFulfillment("f-uid"),  # that object only, never another of its name
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


# -- identity, not name (issue: never act on what is not ours) ----------------------------------


def deleting(status: OrderStatus, policy: str) -> wf.ObservedOrder:
    o = order(status, deletionPolicy=policy)
    return wf.ObservedOrder(**{**o.__dict__, "deleting": True})


def test_deleting_an_order_refused_for_a_taken_name_leaves_the_strangers_fulfillment_alone() -> None:
    taken = wf.decide(order(), fulfillment(order_uid=None), T0, ACK).status
    assert taken is not None
    assert cond(taken, "Stalled") == ("True", "FulfillmentNameTaken")
    stranger = fulfillment(order_uid=None)
    for policy in ("Cancel", "Delete"):
        assert wf.decide(deleting(taken, policy), stranger, T0, ACK).actions == (wf.RemoveFinalizer(),)


def mirrored() -> OrderStatus:
    """An order that has seen its own Fulfillment (uid f-uid) running."""
    status = wf.decide(order(created()), fulfillment(), T0, ACK).status
    assert status is not None
    assert status.fulfillment is not None
    assert status.fulfillment.uid == "f-uid"
    return status


def test_a_new_fulfillment_of_the_same_name_is_never_adopted_mirrored_or_signalled() -> None:
    before = mirrored()
    for stranger_order_uid in (None, "order-uid"):  # made by hand, or even naming this order
        stranger = wf.FulfillmentAsRead(**{**fulfillment("Shipped", trackingNumber="X").__dict__,
                                             "uid": "other-uid", "order_uid": stranger_order_uid})  # fmt: skip
        decision = wf.decide(order(before, paused=True), stranger, T0, ACK)
        assert decision.actions == ()
        assert decision.status is not None
        assert cond(decision.status, "Stalled") == ("True", "FulfillmentReplaced")
        assert decision.status.phase is not OrderPhase.COMPLETED
        assert decision.status.fulfillment == before.fulfillment
        for policy in ("Cancel", "Delete"):
            assert wf.decide(deleting(before, policy), stranger, T0, ACK).actions == (wf.RemoveFinalizer(),)


def test_the_uid_of_the_created_fulfillment_is_recorded() -> None:
    status = wf.with_created(created(), "new-uid")
    assert status.fulfillment is not None
    assert status.fulfillment.uid == "new-uid"


def test_after_folds_each_outcome_back_into_the_decision_in_one_place() -> None:
    o = wf.ObservedOrder(**{**order().__dict__, "has_finalizer": False})
    decision = wf.decide(o, None, T0, ACK)
    assert [type(a) for a in decision.actions] == [wf.AddFinalizer, wf.CreateFulfillment]
    assert decision.fulfillment == "o1"
    done = wf.after(o, decision, [wf.Done(), wf.Created("new-uid")], T0)
    assert done.status is not None
    assert done.status.fulfillment is not None
    assert done.status.fulfillment.uid == "new-uid"
    assert done.done == ("added finalizer", "created Fulfillment o1")
    assert done.events == decision.events
    # Stopped by a change under it: what was done is said, the status is left to the next decision.
    interrupted = wf.after(o, decision, [wf.Done(), wf.Interrupted(0.5)], T0)
    assert (interrupted.status, interrupted.requeue_after, interrupted.done) == (None, 0.5, ("added finalizer",))
    # Stopped by a failure: the core's report of it, as action_failed says.
    failed = wf.after(o, decision, [wf.Done(), wf.ApiFailure(403, "no")], T0)
    assert failed.status is not None
    assert cond(failed.status, "Stalled") == ("True", "FulfillmentForbidden")
    assert failed.retry == "FulfillmentForbidden"
    assert failed.done == ("added finalizer",)


def test_the_label_value_is_valid_for_every_valid_order_name() -> None:
    label = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
    for name in ("o", "a" * 63, "a" * 64, "a" * 252 + "z", "a." * 40 + "b", "x-" * 60 + "y", "a" * 62 + ".b"):
        value = wf.label_value(name)
        assert len(value) <= 63, name
        assert re.match(label, value), (name, value)
    assert wf.label_value("a" * 63) == "a" * 63  # short names stay as typed
    assert wf.label_value("a" * 64 + "1") != wf.label_value("a" * 64 + "2")


# -- errors the API server gives end on the Order -----------------------------------------------


def test_a_refused_create_is_a_condition_and_one_warning_never_a_retry_loop() -> None:
    action = wf.CreateFulfillment({})
    failure = wf.ApiFailure(422, 'Fulfillment "x" is invalid: metadata.labels: Invalid value')
    decision = wf.action_failed(order(), OrderStatus(), action, failure, T0)
    assert decision.status is not None
    assert cond(decision.status, "Stalled") == ("True", "FulfillmentRejected")
    assert "metadata.labels: Invalid value" in next(c.message for c in decision.status.conditions if c.type == "Ready")
    assert [e.reason for e in decision.events] == ["FulfillmentRejected"]
    assert decision.requeue_after is None
    again = wf.action_failed(order(decision.status), decision.status, action, failure, T0)
    assert again.events == ()  # the same refusal warns once


def test_a_forbidden_action_is_reported_and_retried_as_the_policy_says() -> None:
    decision = wf.action_failed(order(), OrderStatus(), wf.SendSignals({}), wf.ApiFailure(403, "no"), T0)
    assert decision.status is not None
    assert cond(decision.status, "Stalled") == ("True", "FulfillmentForbidden")
    assert decision.retry == "FulfillmentForbidden"
    assert decision.requeue_after is None  # the work queue's retry policy decides when


def test_a_missing_api_is_retried_and_a_refusal_is_not() -> None:
    missing = wf.action_failed(order(), OrderStatus(), wf.CreateFulfillment({}), wf.ApiFailure(404, "nf"), T0)
    assert missing.retry == "FulfillmentAPIUnavailable"
    refused = wf.action_failed(order(), OrderStatus(), wf.CreateFulfillment({}), wf.ApiFailure(422, "bad"), T0)
    assert refused.retry is None


def test_when_retries_run_out_the_order_is_stalled_with_the_count_and_the_error() -> None:
    decision = wf.gave_up(OrderStatus(), 3, "FulfillmentForbidden", "not allowed to create Fulfillments: no", 10, T0)
    assert decision.status is not None
    assert cond(decision.status, "Stalled") == ("True", "FulfillmentForbidden")
    stalled = next(c for c in decision.status.conditions if c.type == "Stalled")
    assert "gave up after 10 attempts" in stalled.message
    assert "not allowed to create Fulfillments: no" in stalled.message
    assert stalled.observed_generation == 3
    assert [e.reason for e in decision.events] == ["RetriesExhausted"]


# -- what kstatus reads (docs/status.md) --------------------------------------------------------


def kstatus(status: OrderStatus) -> str:
    """kstatus's rule for a resource with standard conditions, observedGeneration current."""
    conditions = {c.type: c.status.value for c in status.conditions}
    if conditions.get("Reconciling") == "True":
        return "InProgress"
    if conditions.get("Stalled") == "True":
        return "Failed"
    return "Current" if conditions.get("Ready", "True") == "True" else "InProgress"


def test_a_cancel_the_order_asked_for_is_done() -> None:
    decision = wf.decide(order(created(), cancelled=True), fulfillment("Cancelled"), T0, ACK)
    assert decision.status is not None
    assert decision.status.phase is OrderPhase.CANCELLED
    assert cond(decision.status, "Ready") == ("True", "Cancelled")
    assert kstatus(decision.status) == "Current"
    before_start = wf.decide(order(cancelled=True), None, T0, ACK).status
    assert before_start is not None
    assert kstatus(before_start) == "Current"


def test_a_cancel_nobody_asked_for_is_a_failure_of_the_order() -> None:
    decision = wf.decide(order(created()), fulfillment("Cancelled"), T0, ACK)
    assert decision.status is not None
    assert cond(decision.status, "Stalled") == ("True", "CancelledElsewhere")
    assert kstatus(decision.status) == "Failed"


def test_a_pause_the_order_asked_for_is_a_known_waiting_state() -> None:
    paused = order(created(), paused=True)
    sent = wf.decide(paused, fulfillment(), T0, ACK).status
    assert sent is not None
    assert kstatus(sent) == "InProgress"  # asked, not yet done
    acked = wf.with_signal_generation(sent, 2)
    decision = wf.decide(order(acked, paused=True), fulfillment(generation=2, observed=2, paused=True), T0, ACK)
    assert decision.status is not None
    assert cond(decision.status, "Ready") == ("True", "Paused")
    assert kstatus(decision.status) == "Current"


def test_a_pause_made_on_the_fulfillment_directly_needs_a_change() -> None:
    status = wf.with_signal_generation(created(), 1)
    decision = wf.decide(order(status), fulfillment(paused=True), T0, ACK)
    assert decision.status is not None
    assert cond(decision.status, "Stalled") == ("True", "PausedElsewhere")


def test_failed_and_completed_read_as_failed_and_current() -> None:
    failed = wf.decide(order(created()), fulfillment("Failed", failureMessage="dropped"), T0, ACK).status
    shipped = wf.decide(order(created()), completed_fulfillment(), T0, ACK).status
    assert failed is not None
    assert shipped is not None
    assert kstatus(failed) == "Failed"
    assert kstatus(shipped) == "Current"


def test_an_unacknowledged_signal_shows_in_the_ready_message() -> None:
    later = T0 + datetime.timedelta(seconds=ACK + 1)
    decision = wf.decide(order(created()), fulfillment(observed=None), later, ACK)
    assert decision.status is not None
    ready = next(c for c in decision.status.conditions if c.type == "Ready")
    assert ready.status.value == "False"
    assert "has not acknowledged" in ready.message


def test_shipped_without_a_tracking_number_is_reported_not_trusted() -> None:
    decision = wf.decide(order(created()), fulfillment("Shipped"), T0, ACK)
    assert decision.status is not None
    assert decision.status.phase is OrderPhase.FULFILLING
    assert cond(decision.status, "Stalled") == ("True", "FulfillmentStatusInconsistent")
    assert all("None" not in c.message for c in decision.status.conditions)
    assert "FulfillmentStatusInconsistent" in [e.reason for e in decision.events]


# -- retention: ttlSecondsAfterFinished, with Job's semantics -----------------------------------


def completed(**spec: Any) -> tuple[wf.ObservedOrder, wf.FulfillmentAsRead]:
    shipped = completed_fulfillment()
    status = wf.decide(order(created(), **spec), shipped, T0, ACK).status
    assert status is not None
    assert status.completed_at == T0
    return order(status, **spec), shipped


def test_a_finished_order_is_deleted_its_time_to_live_after_it_finished() -> None:
    o, f = completed(ttlSecondsAfterFinished=60)
    waiting = wf.decide(o, f, T0 + datetime.timedelta(seconds=20), ACK)
    assert wf.Expire() not in waiting.actions
    assert waiting.requeue_after == 40
    assert wf.Expire() in wf.decide(o, f, T0 + datetime.timedelta(seconds=60), ACK).actions


def test_the_controllers_default_applies_only_when_the_order_sets_none() -> None:
    o, f = completed()
    late = T0 + datetime.timedelta(days=365)
    assert wf.Expire() not in wf.decide(o, f, late, ACK).actions  # unset: kept
    assert wf.Expire() in wf.decide(o, f, late, ACK, default_ttl=3600).actions
    kept, f = completed(ttlSecondsAfterFinished=10**9)
    assert wf.Expire() not in wf.decide(kept, f, late, ACK, default_ttl=0).actions


def test_a_live_order_is_never_expired() -> None:
    running = wf.decide(order(created(), ttlSecondsAfterFinished=0), fulfillment(), T0, ACK)
    assert wf.Expire() not in running.actions


def test_on_deletion_the_cancel_policy_gives_the_fulfillment_the_same_time_to_live() -> None:
    o, f = completed(ttlSecondsAfterFinished=30)
    going = wf.ObservedOrder(**{**o.__dict__, "deleting": True})
    assert wf.decide(going, f, T0, ACK).actions == (
        wf.SendSignals({"ttlSecondsAfterFinished": 30}),
        wf.RemoveFinalizer(),
    )
    orphan = wf.ObservedOrder(**{**order(o.status, ttlSecondsAfterFinished=30, deletionPolicy="Orphan").__dict__,
                                 "deleting": True})  # fmt: skip
    assert wf.decide(orphan, f, T0, ACK).actions == (wf.RemoveFinalizer(),)


def test_the_cached_fulfillment_decides_exactly_as_the_whole_one() -> None:
    def condition(type_: str, status: str, reason: str) -> dict[str, str]:
        return {"type": type_, "status": status, "reason": reason, "message": "m", "lastTransitionTime": T0.isoformat()}

    body = {
        "metadata": {"name": "o1", "uid": "f-uid", "generation": 3},
        "spec": {"orderRef": {"name": "o1", "uid": "order-uid"}, "items": [{"sku": "A", "quantity": 1}],
                 "customerEmail": "a@example.com", "shippingAddress": ADDRESS, "paused": True},
        "status": {"phase": "Packing", "observedGeneration": 3, "paused": True, "conditions": [
            condition("Ready", "True", "Paused"), condition("Accepted", "False", "CancelRefused")],
            "history": [{"time": T0.isoformat(), "phase": "Picking", "reason": "Started"},
                        {"time": T0.isoformat(), "phase": "Packing", "reason": "Picked"}]},
    }  # fmt: skip
    cached = fulfillment_as_read(body)
    assert cached["status"]["history"] == body["status"]["history"][-1:]  # the newest only: Shipped's evidence
    assert "customerEmail" not in cached["spec"]
    status = wf.with_signal_generation(created(), 3)
    for spec in ({}, {"paused": True}, {"cancelled": True}):
        whole = wf.decide(order(status, **spec), wf.FulfillmentAsRead.from_body(body), T0, ACK)
        kept = wf.decide(order(status, **spec), wf.FulfillmentAsRead.from_body(cached), T0, ACK)
        assert whole == kept


def test_a_fulfillment_is_read_as_far_as_it_can_be() -> None:
    body = {
        "metadata": {"name": "o1", "uid": "f-uid"},
        "spec": {"orderRef": {"uid": "order-uid"}, "shippingAddress": ADDRESS},
        "status": {"phase": "Packing", "observedGeneration": 1},
    }
    read = wf.FulfillmentAsRead.from_body(body)
    assert read.shipping_address == ShippingAddress.model_validate(ADDRESS)
    assert read.status.phase.value == "Packing"
    assert read.generation == 1
    # A newer (or broken) status counts as not reported yet; an address it cannot read, as none.
    unreadable = {**body, "spec": {"shippingAddress": {"city": "Leeds"}}, "status": {"phase": "Teleported"}}
    read = wf.FulfillmentAsRead.from_body(unreadable)
    assert read.shipping_address is None
    assert read.status == FulfillmentStatus()


# -- spec.activeDeadlineSeconds: the customer's promise, wall-clock from creation -----------------


def due_order(status: OrderStatus | None = None, generation: int = 1, **spec: Any) -> wf.ObservedOrder:
    o = order(status, generation, **spec)
    return wf.ObservedOrder(**{**o.__dict__, "created_at": T0})


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def test_an_order_with_a_deadline_says_when_it_is_due_and_wakes_then() -> None:
    first = wf.decide(due_order(activeDeadlineSeconds=100), None, T0, ACK)
    assert first.status is not None
    assert first.status.due_at == at(100)
    later = wf.decide(due_order(first.status, activeDeadlineSeconds=100), fulfillment(), at(90), ACK)
    assert later.status is not None
    assert later.status.deadline_exceeded_at is None
    assert later.requeue_after == 10
    assert later.actions == ()


def past_due(
    seconds: float = 101, seen: wf.FulfillmentAsRead | None = None, **more: Any
) -> tuple[wf.Decision, OrderStatus]:
    status = wf.decide(due_order(activeDeadlineSeconds=100), None, T0, ACK).status
    assert status is not None
    seen = seen or fulfillment(**more)
    decision = wf.decide(due_order(status, activeDeadlineSeconds=100), seen, at(seconds), ACK)
    assert decision.status is not None
    return decision, decision.status


def test_past_the_deadline_the_fulfillment_is_cancelled_once_and_the_order_warns_once() -> None:
    decision, status = past_due()
    assert decision.actions == (wf.SendSignals({"cancelled": True}),)
    assert status.deadline_exceeded_at == at(101)
    assert status.phase is OrderPhase.FULFILLING  # until the Fulfillment confirms it stopped
    assert cond(status, "Ready") == ("False", "DeadlineExceeded")
    assert cond(status, "Reconciling") == ("True", "DeadlineExceeded")
    warnings = [e for e in decision.events if e.type == "Warning"]
    assert [e.reason for e in warnings] == ["DeadlineExceeded"]
    assert "2026-11-25T12:01:40Z" in warnings[0].message  # the time it was due
    again = wf.decide(due_order(status, activeDeadlineSeconds=100), fulfillment(generation=2), at(102), ACK)
    assert again.actions == ()
    assert "DeadlineExceeded" not in [e.reason for e in again.events]


def test_the_fulfillment_cancelled_for_the_deadline_fails_the_order() -> None:
    _, status = past_due()
    cancelled = fulfillment("Cancelled", generation=2, observed=2)
    decision = wf.decide(due_order(status, activeDeadlineSeconds=100), cancelled, at(102), ACK)
    s = decision.status
    assert s is not None
    assert s.phase is OrderPhase.FAILED
    assert cond(s, "Ready") == ("False", "DeadlineExceeded")
    assert cond(s, "Stalled") == ("True", "DeadlineExceeded")
    assert s.completed_at == at(102)
    assert [e.reason for e in decision.events] == ["Failed"]


def test_shipped_in_the_same_reconcile_that_finds_the_deadline_passed_completes() -> None:
    decision, status = past_due(seen=completed_fulfillment())
    assert decision.actions == ()
    assert status.phase is OrderPhase.COMPLETED
    assert status.deadline_exceeded_at is None
    assert cond(status, "Ready") == ("True", "Completed")


def test_shipped_before_the_cancel_reached_it_completes_and_says_so() -> None:
    _, status = past_due()
    shipped = completed_fulfillment(generation=2, observed=2)
    decision = wf.decide(due_order(status, activeDeadlineSeconds=100), shipped, at(102), ACK)
    s = decision.status
    assert s is not None
    assert s.phase is OrderPhase.COMPLETED  # never both: the Fulfillment's answer decides
    ready = next(c for c in s.conditions if c.type == "Ready")
    assert ready.status == "True"
    assert "before the cancel for the deadline" in ready.message


def test_a_raised_deadline_moves_the_due_time_before_it_passes() -> None:
    status = wf.decide(due_order(activeDeadlineSeconds=100), None, T0, ACK).status
    raised = wf.decide(due_order(status, 2, activeDeadlineSeconds=500), fulfillment(), at(150), ACK)
    assert raised.actions == ()
    assert raised.status is not None
    assert raised.status.due_at == at(500)
    assert raised.requeue_after == 350


def test_a_passed_deadline_is_final_even_if_the_spec_says_otherwise_later() -> None:
    _, status = past_due()
    decision = wf.decide(due_order(status, 2, activeDeadlineSeconds=9999), fulfillment(), at(103), ACK)
    assert decision.status is not None
    assert decision.status.deadline_exceeded_at == at(101)
    cancelled = fulfillment("Cancelled", generation=2, observed=2)
    final = wf.decide(due_order(decision.status, 2, activeDeadlineSeconds=9999), cancelled, at(104), ACK)
    assert final.status is not None
    assert final.status.phase is OrderPhase.FAILED


def test_paused_time_counts_towards_the_order_deadline() -> None:
    _, status = past_due(paused=True)  # paused on both sides as the order asked
    assert status.deadline_exceeded_at == at(101)


def test_an_order_past_due_without_a_fulfillment_fails_at_once_and_creates_none() -> None:
    # Invalid (over 1,000 units): no Fulfillment was ever created; the deadline still ends it.
    big = {"items": [{"sku": "A", "quantity": 1001}], "activeDeadlineSeconds": 100}
    invalid = wf.decide(due_order(**big), None, T0, ACK).status
    assert invalid is not None
    assert invalid.phase is OrderPhase.INVALID
    decision = wf.decide(due_order(invalid, **big), None, at(100), ACK)
    s = decision.status
    assert s is not None
    assert s.phase is OrderPhase.FAILED
    assert cond(s, "Ready") == ("False", "DeadlineExceeded")
    assert not any(isinstance(a, wf.CreateFulfillment) for a in decision.actions)
    assert [e.reason for e in decision.events] == ["DeadlineExceeded", "Failed"]


def test_the_fulfillments_own_deadline_is_its_failure_not_the_orders() -> None:
    status = wf.decide(due_order(activeDeadlineSeconds=1000), None, T0, ACK).status
    failed = fulfillment(
        "Failed", failureReason="DeadlineExceeded", failureMessage="deadline exceeded: due at 12:00:50"
    )
    decision = wf.decide(due_order(status, activeDeadlineSeconds=1000), failed, at(60), ACK)
    s = decision.status
    assert s is not None
    assert s.phase is OrderPhase.FAILED
    assert s.deadline_exceeded_at is None
    assert cond(s, "Ready") == ("False", "FulfillmentFailed")
    assert decision.actions == ()


def test_a_cancel_the_customer_asked_for_stays_a_cancel_past_the_deadline() -> None:
    status = wf.decide(due_order(activeDeadlineSeconds=100), None, T0, ACK).status
    asked = wf.decide(due_order(status, 2, cancelled=True, activeDeadlineSeconds=100), fulfillment(), at(50), ACK)
    cancelled = fulfillment("Cancelled", generation=2, observed=2)
    s = wf.decide(due_order(asked.status, 2, cancelled=True, activeDeadlineSeconds=100), cancelled, at(150), ACK).status
    assert s is not None
    assert s.phase is OrderPhase.CANCELLED
    assert cond(s, "Ready") == ("True", "Cancelled")


# -- targets: the Fulfillment in another namespace or cluster --------------------------------------

WAREHOUSE = Declaration.model_validate(
    {"targets": [{"name": "warehouse", "namespace": "fulfilment", "allowedNamespaces": ["ns"]}]}
)
UP = wf.Link(reachable=True, last_reached=T0)
DOWN = wf.Link(reachable=False, reason="Unreachable", message="connection refused", last_reached=T0)


def where(link: wf.Link | None = UP, requested: str | None = "warehouse") -> wf.Where:
    return wf.Where(place=place_of(WAREHOUSE, "ns", requested), link=link, cluster="shop-eu")


def test_the_fulfillment_is_created_in_the_target_and_says_whose_it_is() -> None:
    decision = wf.decide(order(target="warehouse"), None, T0, ACK, where=where())
    create = decision.actions[0]
    assert isinstance(create, wf.CreateFulfillment)
    assert create.body["metadata"]["namespace"] == "fulfilment"
    assert create.body["metadata"]["name"] == "ns.o1"
    assert create.body["spec"]["orderRef"] == {
        "name": "o1",
        "uid": "order-uid",
        "namespace": "ns",
        "cluster": "shop-eu",
    }
    assert decision.status is not None
    assert decision.status.fulfillment is not None
    assert (decision.status.fulfillment.target, decision.status.fulfillment.namespace) == ("warehouse", "fulfilment")
    assert cond(decision.status, "TargetReachable") == ("True", "Reachable")


def test_a_target_the_namespace_may_not_use_creates_nothing_anywhere() -> None:
    for requested, reason in (("nowhere", "TargetUnknown"), ("warehouse", "TargetNotAllowed")):
        o = wf.ObservedOrder(**{**order(target=requested).__dict__, "namespace": "elsewhere"})
        decision = wf.decide(o, None, T0, ACK, where=wf.Where(place=place_of(WAREHOUSE, "elsewhere", requested)))
        assert not any(isinstance(a, wf.CreateFulfillment) for a in decision.actions)
        assert decision.status is not None
        assert cond(decision.status, "Stalled") == ("True", reason)
        assert [e.reason for e in decision.events] == [reason]


def test_while_the_target_is_unreachable_the_order_keeps_what_it_knew_and_sends_nothing() -> None:
    status = wf.decide(order(target="warehouse"), None, T0, ACK, where=where()).status
    mirrored = wf.decide(order(status, target="warehouse"), fulfillment(), T0, ACK, where=where()).status
    assert mirrored is not None
    decision = wf.decide(order(mirrored, 2, target="warehouse", paused=True), fulfillment(), T0, ACK, where=where(DOWN))
    assert decision.actions == ()  # the pause waits in spec
    s = decision.status
    assert s is not None
    assert s.fulfillment is not None
    assert s.fulfillment.phase == "Picking"  # the last known status stays
    assert cond(s, "TargetReachable") == ("False", "Unreachable")
    assert cond(s, "Reconciling") == ("True", "TargetUnreachable")  # waiting mends an outage
    assert cond(s, "Stalled") == ("False", "NoError")
    assert [e.reason for e in decision.events] == ["TargetUnreachable"]
    # Reachable again: the queued signal goes, once.
    back = wf.decide(order(s, 2, target="warehouse", paused=True), fulfillment(), T0, ACK, where=where())
    assert back.actions == (wf.SendSignals({"paused": True}),)


def test_a_refused_permission_in_the_target_needs_a_person() -> None:
    status = wf.decide(order(target="warehouse"), None, T0, ACK, where=where()).status
    forbidden = wf.Link(reachable=False, reason="Forbidden", message='cannot list resource "fulfillments"')
    s = wf.decide(order(status, target="warehouse"), fulfillment(), T0, ACK, where=where(forbidden)).status
    assert s is not None
    assert cond(s, "Stalled") == ("True", "Forbidden")
    stalled = next(c for c in s.conditions if c.type == "Stalled")
    assert 'cannot list resource "fulfillments"' in stalled.message


def test_deleting_while_the_target_is_down_waits_unless_the_policy_is_orphan() -> None:
    status = wf.decide(order(target="warehouse"), None, T0, ACK, where=where()).status
    deleting = wf.ObservedOrder(**{**order(status, target="warehouse").__dict__, "deleting": True})
    waiting = wf.decide(deleting, fulfillment(), T0, ACK, where=where(DOWN))
    assert waiting.actions == ()  # the finalizer stays
    assert waiting.status is not None
    assert cond(waiting.status, "Ready") == ("False", "DeletionWaitsForTarget")
    orphan = wf.ObservedOrder(
        **{**order(status, target="warehouse", deletionPolicy="Orphan").__dict__, "deleting": True}
    )
    assert wf.decide(orphan, fulfillment(), T0, ACK, where=where(DOWN)).actions == (wf.RemoveFinalizer(),)
    back = wf.decide(deleting, fulfillment(), T0, ACK, where=where())
    assert back.actions == (wf.SendSignals({"cancelled": True}), wf.RemoveFinalizer())


# -- a forged completedAt never outlives the phase it belongs to ---------------------------------


def test_a_completed_at_is_cleared_while_the_order_is_not_finished() -> None:
    forged = created().model_copy(update={"phase": OrderPhase.COMPLETED, "completed_at": T0 - HOUR})
    status = wf.decide(order(forged), fulfillment(), T0, ACK).status
    assert status is not None
    assert status.phase is OrderPhase.FULFILLING
    assert status.completed_at is None


def test_a_forged_completed_at_does_not_start_retention_when_the_order_really_finishes() -> None:
    forged = created().model_copy(update={"completed_at": T0 - HOUR})  # phase Fulfilling, as it really is
    decision = wf.decide(order(forged, ttlSecondsAfterFinished=60), completed_fulfillment(), T0, ACK)
    assert decision.status is not None
    assert decision.status.completed_at == T0
    assert wf.Expire() not in decision.actions
    assert decision.requeue_after == 60


def forged(phase: str, **fields: Any) -> wf.FulfillmentAsRead:
    return fulfillment(phase, cancelled=False, **fields)


def test_a_shipped_status_is_believed_only_with_its_own_tracking_number_and_history() -> None:
    real = completed_fulfillment().status.wire()
    shipped_entry = real["history"][-1]
    picked = {**shipped_entry, "phase": "Packing", "reason": "Picked"}
    cases = {
        "any tracking number": {**real, "trackingNumber": "OF000000000000"},
        "no history": {**real, "history": []},
        "history ending elsewhere": {**real, "history": [picked]},
        "completedAt not when it shipped": {**real, "completedAt": (T0 - HOUR).isoformat()},
    }
    for case, status in cases.items():
        f = forged("Shipped", **{k: v for k, v in status.items() if k not in ("phase", "observedGeneration")})
        decision = wf.decide(order(created(), ttlSecondsAfterFinished=0), f, T0, ACK)
        assert decision.status is not None
        assert decision.status.phase is OrderPhase.FULFILLING, case
        assert cond(decision.status, "Stalled") == ("True", "FulfillmentStatusInconsistent"), case
        assert wf.Expire() not in decision.actions, case
    believed = wf.decide(order(created()), completed_fulfillment(), T0, ACK).status
    assert believed is not None
    assert believed.phase is OrderPhase.COMPLETED


def test_a_cancelled_status_the_fulfillments_spec_never_asked_for_is_not_believed() -> None:
    decision = wf.decide(order(created(), ttlSecondsAfterFinished=0), forged("Cancelled"), T0, ACK)
    assert decision.status is not None
    assert decision.status.phase is OrderPhase.FULFILLING
    assert decision.status.completed_at is None
    assert cond(decision.status, "Stalled") == ("True", "FulfillmentStatusInconsistent")
    assert wf.Expire() not in decision.actions
    asked = wf.FulfillmentAsRead(**{**forged("Cancelled").__dict__, "cancelled": True})
    status = wf.decide(order(created()), asked, T0, ACK).status
    assert status is not None
    assert status.phase is OrderPhase.CANCELLED


def test_an_order_cancelled_before_its_fulfillment_exists_is_not_a_missed_deadline() -> None:
    decision = wf.decide(due_order(cancelled=True, activeDeadlineSeconds=100), None, at(150), ACK)
    s = decision.status
    assert s is not None
    assert s.phase is OrderPhase.CANCELLED
    assert s.deadline_exceeded_at is None
    assert "DeadlineExceeded" not in [e.reason for e in decision.events]


def test_a_cancel_that_came_after_shipping_is_said_in_ready_and_warned_once() -> None:
    first = wf.decide(order(created(), cancelled=True), completed_fulfillment(cancelled=True), T0, ACK)
    assert first.status is not None
    assert first.status.phase is OrderPhase.COMPLETED
    ready = next(c for c in first.status.conditions if c.type == "Ready")
    assert (ready.status.value, ready.reason) == ("True", "Completed")  # done: nothing a person can change
    assert "the cancel came too late" in ready.message
    assert [e.reason for e in first.events if e.type == "Warning"] == ["CancelTooLate"]
    again = wf.decide(order(first.status, cancelled=True), completed_fulfillment(cancelled=True), T0, ACK)
    assert [e.reason for e in again.events if e.type == "Warning"] == []


def test_a_fulfillment_that_ended_long_ago_still_outlives_its_order_on_deletion() -> None:
    o, f = completed(ttlSecondsAfterFinished=30)  # the Fulfillment ended at T0
    going = wf.ObservedOrder(**{**o.__dict__, "deleting": True})
    late = T0 + datetime.timedelta(seconds=100)
    (signal, _) = wf.decide(going, f, late, ACK).actions
    assert signal == wf.SendSignals({"ttlSecondsAfterFinished": 100 + wf.OUTLIVE_SECONDS})  # not 30: gone at once
