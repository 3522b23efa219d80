"""The fulfillment workflow core: state in, decision out."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.api.fulfillment import FulfillmentPhase, FulfillmentSpec, FulfillmentStatus
from orderflow.fulfillment.workflow import (
    Expire,
    ObservedFulfillment,
    StepTimes,
    decide,
    elapsed,
    next_look,
    reject_spec,
    tracking_number,
)

T0 = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)
STEPS = StepTimes(picking=10, packing=20)
ADDRESS = {"name": "Ada", "street": "1 Way", "city": "London", "postalCode": "N1", "country": "GB"}


def spec(**fields: Any) -> FulfillmentSpec:
    base: dict[str, Any] = {
        "items": [{"sku": "A", "quantity": 1}],
        "customerEmail": "a@example.com",
        "shippingAddress": ADDRESS,
    }
    base.update(fields)
    return FulfillmentSpec.model_validate(base)


class Clock:
    """Runs the workflow the way the controller does: each reconcile feeds back the last status."""

    def __init__(self, default_deadline: int | None = None, **fields: Any) -> None:
        self.now = T0
        self.default_deadline = default_deadline
        self.spec = spec(**fields)
        self.generation = 1
        self.status = FulfillmentStatus()
        self.events: list[str] = []
        self.requeue_after: float | None = None

    def signal(self, **fields: Any) -> Clock:
        self.spec = FulfillmentSpec.model_validate({**self.spec.wire(), **fields})
        self.generation += 1
        return self.reconcile()

    def advance(self, seconds: float) -> Clock:
        self.now += datetime.timedelta(seconds=seconds)
        return self.reconcile()

    def reconcile(self) -> Clock:
        observed = ObservedFulfillment("f", "uid-1", self.generation, self.spec, self.status, created_at=T0)
        decision = decide(observed, self.now, STEPS, default_deadline=self.default_deadline)
        self.last = decision
        self.status = decision.status
        self.events += [e.reason for e in decision.events]
        self.requeue_after = decision.requeue_after
        return self

    @property
    def phase(self) -> FulfillmentPhase:
        return self.status.phase

    def condition(self, type_: str) -> tuple[str, str]:
        c = next(c for c in self.status.conditions if c.type == type_)
        return c.status.value, c.reason


def test_not_started_stays_pending_and_reports_why() -> None:
    clock = Clock().reconcile().advance(100)
    assert clock.phase is FulfillmentPhase.PENDING
    # Not started is what spec.started=false asks for: done, as kstatus reads Ready (docs/status.md).
    assert clock.condition("Ready") == ("True", "NotStarted")
    assert clock.requeue_after is None
    assert clock.status.observed_generation == 1


def test_runs_each_step_for_its_duration_then_ships() -> None:
    clock = Clock(started=True).reconcile()
    assert clock.phase is FulfillmentPhase.PICKING
    assert clock.requeue_after == 10
    assert clock.advance(9.9).phase is FulfillmentPhase.PICKING
    assert clock.advance(0.1).phase is FulfillmentPhase.PACKING
    assert clock.requeue_after == 20
    clock.advance(20)
    assert clock.phase is FulfillmentPhase.SHIPPED
    assert clock.status.tracking_number == tracking_number("uid-1")
    assert clock.condition("Ready") == ("True", "Shipped")
    assert clock.status.progress is not None
    assert clock.status.progress.percent == 100
    assert [h.reason for h in clock.status.history] == ["Started", "Picked", "Shipped"]


def test_a_late_reconcile_completes_every_elapsed_step_at_the_time_it_ended() -> None:
    clock = Clock(started=True).reconcile().advance(1000)  # e.g. the controller was down
    assert clock.phase is FulfillmentPhase.SHIPPED
    picked, shipped = clock.status.history[1], clock.status.history[2]
    assert picked.time == T0 + datetime.timedelta(seconds=10)
    assert shipped.time == T0 + datetime.timedelta(seconds=30)


def test_zero_length_steps_ship_in_one_decision_with_one_event() -> None:
    clock = Clock(started=True, stepDurationSeconds={"picking": 0, "packing": 0})
    decision = decide(ObservedFulfillment("f", "uid-1", 1, clock.spec, clock.status), clock.now, STEPS)
    assert decision.status.phase is FulfillmentPhase.SHIPPED
    assert decision.transitions == ("Started", "Picked", "Shipped")
    assert [h.reason for h in decision.status.history] == ["Started", "Picked", "Shipped"]
    (event,) = decision.events  # one moment, one Event, naming every transition
    assert event.reason == "Shipped"
    assert "started" in event.message
    assert "picked" in event.message


def test_paused_time_is_not_counted() -> None:
    clock = Clock(started=True).reconcile().advance(4)
    clock.signal(paused=True)
    assert clock.condition("Paused") == ("True", "PausedBySignal")
    assert clock.status.step_elapsed_seconds == 4
    assert clock.requeue_after is None
    clock.advance(1000)
    assert clock.phase is FulfillmentPhase.PICKING
    clock.signal(paused=False)
    assert clock.requeue_after == 6
    assert clock.advance(5.9).phase is FulfillmentPhase.PICKING
    assert clock.advance(0.1).phase is FulfillmentPhase.PACKING


def test_started_paused_waits_without_counting() -> None:
    clock = Clock(started=True, paused=True).reconcile().advance(50)
    assert clock.phase is FulfillmentPhase.PICKING
    assert elapsed(clock.status, clock.now) == 0


def test_cancel_before_shipping_is_final() -> None:
    clock = Clock(started=True).reconcile().advance(12)
    clock.signal(cancelled=True)
    assert clock.phase is FulfillmentPhase.CANCELLED
    assert clock.status.progress is not None
    assert clock.status.progress.completed_steps == 1
    assert clock.advance(1000).phase is FulfillmentPhase.CANCELLED
    assert clock.status.tracking_number is None


def test_cancel_after_shipping_is_refused_once_with_a_warning() -> None:
    clock = Clock(started=True).reconcile().advance(100)
    clock.events.clear()
    clock.signal(cancelled=True)
    assert clock.phase is FulfillmentPhase.SHIPPED
    assert clock.condition("Accepted") == ("False", "CancelRefused")
    assert clock.events == ["CancelRefused"]
    clock.advance(1)
    assert clock.events == ["CancelRefused"]  # not repeated on every reconcile


def test_address_changes_are_taken_until_shipped_and_refused_after() -> None:
    clock = Clock(started=True).reconcile()
    moved = {**ADDRESS, "city": "Leeds"}
    clock.signal(shippingAddress=moved)
    assert clock.status.shipping_address is not None
    assert clock.status.shipping_address.city == "Leeds"
    assert "AddressChanged" in clock.events
    clock.advance(100)
    clock.signal(shippingAddress={**ADDRESS, "city": "York"})
    assert clock.status.shipping_address.city == "Leeds"
    assert clock.condition("Accepted") == ("False", "AddressChangeRefused")


def test_simulated_failure_ends_failed_with_its_reason() -> None:
    clock = Clock(started=True, simulateFailure={"step": "Packing", "message": "printer on fire"}).reconcile()
    clock.advance(10)
    assert clock.phase is FulfillmentPhase.FAILED
    assert clock.status.failure_message == "printer on fire"
    assert clock.condition("Stalled") == ("True", "Failed")


def test_observed_generation_acknowledges_each_signal() -> None:
    clock = Clock(started=True).reconcile()
    clock.signal(paused=True)
    assert clock.status.observed_generation == clock.generation == 2
    assert all(c.observed_generation == 2 for c in clock.status.conditions)


def test_conditions_keep_their_transition_time_when_status_is_unchanged() -> None:
    clock = Clock(started=True).reconcile()
    before = {c.type: c.last_transition_time for c in clock.status.conditions}
    clock.advance(1)
    after = {c.type: c.last_transition_time for c in clock.status.conditions}
    assert before == after


def test_a_decision_on_unchanged_state_changes_nothing() -> None:
    clock = Clock(started=True).reconcile()
    decision = decide(ObservedFulfillment("f", "uid-1", 1, clock.spec, clock.status), clock.now, STEPS)
    assert decision.status.wire() == clock.status.wire()  # what the status writer compares: no write
    assert decision.events == ()


def test_reject_spec_reports_once() -> None:
    status = FulfillmentStatus()
    first = reject_spec(status, 3, ValueError("bad"), T0)
    assert first.events
    assert first.events[0].reason == "InvalidSpec"
    again = reject_spec(first.status, 3, ValueError("bad"), T0)
    assert again.events == ()
    stalled = next(c for c in again.status.conditions if c.type == "Stalled")
    assert (stalled.status.value, stalled.reason) == ("True", "InvalidSpec")


# -- properties over any sequence of signals and clock advances -------------------------------

ORDER = {
    FulfillmentPhase.PENDING: 0,
    FulfillmentPhase.PICKING: 1,
    FulfillmentPhase.PACKING: 2,
    FulfillmentPhase.SHIPPED: 3,
    FulfillmentPhase.CANCELLED: 3,
    FulfillmentPhase.FAILED: 3,
}

actions = st.one_of(
    # quarter seconds: exact in floats and in datetime arithmetic, so the model below is exact
    st.tuples(st.just("advance"), st.integers(min_value=0, max_value=160).map(lambda n: n / 4)),
    st.tuples(st.just("start"), st.none()),
    st.tuples(st.just("pause"), st.booleans()),
    st.tuples(st.just("cancel"), st.none()),
    st.tuples(st.just("address"), st.sampled_from(["Leeds", "York", "London"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(actions, max_size=30))
def test_invariants_hold_for_any_sequence(steps: list[tuple[str, Any]]) -> None:
    clock = Clock().reconcile()
    running_time = 0.0  # the model: time the workflow has spent running, paused time excluded
    for action, arg in steps:
        before = clock.status.model_copy(deep=True)
        if action == "advance":
            if not before.paused and before.phase in (FulfillmentPhase.PICKING, FulfillmentPhase.PACKING):
                running_time += arg
            clock.advance(arg)
        elif action == "start" and not clock.spec.started:
            clock.signal(started=True)
        elif action == "pause":
            clock.signal(paused=arg)
        elif action == "cancel" and not clock.spec.cancelled:
            clock.signal(cancelled=True)
        elif action == "address":
            clock.signal(shippingAddress={**ADDRESS, "city": arg})
        after = clock.status

        # progress never goes back
        assert ORDER[after.phase] >= ORDER[before.phase]
        bp, ap = before.progress, after.progress
        assert ap is not None
        assert bp is None or ap.percent >= bp.percent
        # terminal phases stay terminal, and the same one
        if before.phase.terminal:
            assert after.phase is before.phase
        # a cancelled fulfillment never ships; a shipped one never cancels
        if after.phase is FulfillmentPhase.SHIPPED:
            assert not any(h.reason == "Cancelled" for h in after.history)
        if after.phase is FulfillmentPhase.CANCELLED:
            assert after.tracking_number is None
        # no phase transition twice in the history
        phase_moves = [h.reason for h in after.history if h.reason not in ("Paused", "Resumed")]
        assert len(phase_moves) == len(set(phase_moves))
        # the signal is acknowledged in the same decision
        assert after.observed_generation == clock.generation
        # paused time is not counted, running time is: the phase is exactly what the model says
        if after.phase in (FulfillmentPhase.PICKING, FulfillmentPhase.PACKING, FulfillmentPhase.SHIPPED):
            if running_time < STEPS.picking:
                expected = FulfillmentPhase.PICKING
            elif running_time < STEPS.picking + STEPS.packing:
                expected = FulfillmentPhase.PACKING
            else:
                expected = FulfillmentPhase.SHIPPED
            assert after.phase is expected, (running_time, after.phase)


def test_a_running_step_without_a_clock_is_resumed_not_crashed() -> None:
    clock = Clock(started=True).reconcile()
    clock.status = clock.status.model_copy(update={"step_resumed_at": None, "step_elapsed_seconds": 4.0})
    clock.reconcile()
    assert clock.phase is FulfillmentPhase.PICKING
    assert clock.requeue_after == 6


def test_two_refusals_at_once_each_warn_once() -> None:
    clock = Clock(started=True).reconcile().advance(100)
    clock.signal(cancelled=True)
    clock.signal(shippingAddress={**ADDRESS, "city": "York"})
    assert clock.condition("Accepted") == ("False", "AddressChangeRefused")
    clock.events.clear()
    clock.signal(paused=True)  # a later, unrelated signal: both refusals still stand, neither is new
    assert clock.events == []


# -- status is input; every state readable by kstatus (docs/status.md) ---------------------------


def test_a_step_clock_in_the_future_counts_as_now_with_a_warning() -> None:
    clock = Clock(started=True).reconcile()
    assert clock.phase is FulfillmentPhase.PICKING
    skewed = clock.status.model_copy(update={"step_resumed_at": T0 + datetime.timedelta(days=365)})
    clock.status = skewed
    clock.advance(1)
    assert clock.status.step_resumed_at == T0 + datetime.timedelta(seconds=1)
    assert "ClockInFuture" in clock.events
    clock.advance(STEPS.picking)  # the step ends its own length after "now", not a year later
    assert clock.phase is FulfillmentPhase.PACKING


def test_shipped_without_a_tracking_number_is_reported_once() -> None:
    clock = Clock(started=True)
    clock.status = FulfillmentStatus.model_validate({"phase": "Shipped", "observedGeneration": 1})
    clock.reconcile().reconcile()
    assert clock.condition("Stalled") == ("True", "InconsistentStatus")
    assert clock.condition("Ready")[0] == "False"
    assert clock.events.count("InconsistentStatus") == 1


def test_paused_and_cancelled_as_the_spec_asks_are_done() -> None:
    clock = Clock(started=True).reconcile().signal(paused=True)
    assert clock.condition("Ready") == ("True", "Paused")
    assert clock.condition("Reconciling")[0] == "False"
    clock.signal(paused=False)
    assert clock.condition("Ready") == ("False", "InProgress")
    assert clock.condition("Reconciling") == ("True", "Progressing")
    clock.signal(cancelled=True)
    assert clock.condition("Ready") == ("True", "Cancelled")


# -- retention ----------------------------------------------------------------------------------


def test_a_finished_fulfillment_is_due_its_time_to_live_after_it_finished() -> None:
    clock = Clock(started=True, ttlSecondsAfterFinished=100).reconcile().advance(STEPS.picking).advance(STEPS.packing)
    assert clock.phase is FulfillmentPhase.SHIPPED
    decision = decide(ObservedFulfillment("f", "uid-1", 1, clock.spec, clock.status), clock.now, STEPS)
    assert Expire() not in decision.actions
    assert decision.requeue_after == 100
    later = clock.now + datetime.timedelta(seconds=100)
    assert Expire() in decide(ObservedFulfillment("f", "uid-1", 1, clock.spec, clock.status), later, STEPS).actions


def test_the_default_time_to_live_never_applies_to_a_fulfillment_serving_an_order() -> None:
    ref = {"orderRef": {"name": "o", "uid": "u"}}
    for fields, expired in (({}, True), (ref, False), ({**ref, "ttlSecondsAfterFinished": 0}, True)):
        clock = Clock(started=True, cancelled=True, **fields)
        clock.reconcile()
        assert clock.phase is FulfillmentPhase.CANCELLED
        decision = decide(
            ObservedFulfillment("f", "uid-1", 1, clock.spec, clock.status), clock.now, STEPS, default_ttl=0
        )
        assert (Expire() in decision.actions) is expired, fields


# -- spec.activeDeadlineSeconds: wall-clock time from creation --------------------------------


def test_a_deadline_before_shipping_fails_the_workflow_at_the_due_time() -> None:
    clock = Clock(started=True, activeDeadlineSeconds=25).reconcile()
    assert clock.status.due_at == T0 + datetime.timedelta(seconds=25)
    assert clock.requeue_after == 10  # Picking ends first
    assert clock.advance(10).phase is FulfillmentPhase.PACKING
    assert clock.requeue_after == 15  # then the deadline, before Packing's 20 s are up
    clock.advance(15.2)
    assert clock.phase is FulfillmentPhase.FAILED
    assert clock.condition("Ready") == ("False", "DeadlineExceeded")
    assert clock.condition("Stalled") == ("True", "DeadlineExceeded")
    assert clock.status.failure_reason == "DeadlineExceeded"
    assert clock.status.completed_at == clock.status.due_at  # it failed when it was due, not when seen
    assert clock.status.history[-1].reason == "DeadlineExceeded"
    assert clock.events[-1] == "DeadlineExceeded"
    assert clock.last.deadline_lateness is not None
    assert abs(clock.last.deadline_lateness - 0.2) < 1e-6
    assert clock.requeue_after is None


def test_paused_time_counts_towards_the_deadline() -> None:
    clock = Clock(started=True, paused=True, activeDeadlineSeconds=5).reconcile()
    assert clock.requeue_after == 5  # nothing runs while paused, but the deadline's clock does
    assert clock.advance(5).phase is FulfillmentPhase.FAILED
    assert clock.status.failure_reason == "DeadlineExceeded"


def test_shipped_by_the_due_time_wins_even_when_seen_late() -> None:
    # Steps of 10 + 20 s end at 30 s; due at 30 s; the controller looks only at 100 s (a restart).
    clock = Clock(started=True, activeDeadlineSeconds=30).reconcile()
    clock.now += datetime.timedelta(seconds=100)
    clock.reconcile()
    assert clock.phase is FulfillmentPhase.SHIPPED
    assert clock.last.deadline_lateness is None


def test_a_step_ending_after_the_due_time_does_not_count_when_seen_late() -> None:
    clock = Clock(started=True, activeDeadlineSeconds=29).reconcile()
    clock.now += datetime.timedelta(seconds=100)
    clock.reconcile()
    assert clock.phase is FulfillmentPhase.FAILED
    assert [h.reason for h in clock.status.history] == ["Started", "Picked", "DeadlineExceeded"]
    assert clock.status.tracking_number is None


def test_a_raised_deadline_lets_the_workflow_go_on() -> None:
    clock = Clock(started=True, activeDeadlineSeconds=15).reconcile().advance(12)
    assert clock.requeue_after == 3
    clock.signal(activeDeadlineSeconds=60)
    assert clock.requeue_after == 18  # Packing's remaining time, now before the deadline
    assert clock.advance(18).phase is FulfillmentPhase.SHIPPED


def test_a_cancel_read_after_the_due_time_comes_too_late() -> None:
    clock = Clock(started=True, activeDeadlineSeconds=5).reconcile()
    clock.now += datetime.timedelta(seconds=6)
    clock.signal(cancelled=True)
    assert clock.phase is FulfillmentPhase.FAILED
    assert clock.status.failure_reason == "DeadlineExceeded"


def test_the_controllers_default_deadline_is_recorded_and_kept() -> None:
    clock = Clock(default_deadline=50, started=True).reconcile()
    assert clock.status.due_at == T0 + datetime.timedelta(seconds=50)
    clock.default_deadline = 5  # a controller restarted with another default
    assert clock.advance(8).phase is FulfillmentPhase.PICKING  # the recorded promise stands
    assert clock.status.due_at == T0 + datetime.timedelta(seconds=50)


def test_spec_overrides_the_default_deadline() -> None:
    clock = Clock(default_deadline=5, started=True, activeDeadlineSeconds=100).reconcile()
    assert clock.advance(30).phase is FulfillmentPhase.SHIPPED


def test_no_deadline_no_due_time() -> None:
    clock = Clock(started=True).reconcile()
    assert clock.status.due_at is None
    assert clock.advance(1000).phase is FulfillmentPhase.SHIPPED


def test_a_finished_workflow_gets_no_deadline_later() -> None:
    clock = Clock(started=True).reconcile().advance(30)
    assert clock.phase is FulfillmentPhase.SHIPPED
    clock.default_deadline = 1
    clock.advance(100)
    assert clock.phase is FulfillmentPhase.SHIPPED
    assert clock.status.due_at is None  # a restart with a new default writes nothing to finished work


# -- forged status: a terminal phase is believed only with its evidence -----------------------------


def test_a_completed_at_is_cleared_while_the_fulfillment_is_not_finished() -> None:
    clock = Clock(started=True).reconcile()
    clock.status = clock.status.model_copy(update={"completed_at": T0 - datetime.timedelta(hours=1)})
    assert clock.advance(1).status.completed_at is None
    clock.advance(STEPS.picking).advance(STEPS.packing)
    assert clock.phase is FulfillmentPhase.SHIPPED
    assert clock.status.completed_at == T0 + datetime.timedelta(seconds=STEPS.picking + STEPS.packing)  # its real end


def test_a_shipped_status_without_its_evidence_is_reported_and_never_expires() -> None:
    clock = Clock(started=True, ttlSecondsAfterFinished=0).reconcile()  # serves no Order: its own TTL applies
    real = Clock(started=True).reconcile().advance(STEPS.picking).advance(STEPS.packing).status
    clock.status = real.model_copy(update={"tracking_number": "OF000000000000"})  # any number
    assert real.completed_at is not None
    decision = decide(ObservedFulfillment("f", "uid-1", 1, clock.spec, clock.status), real.completed_at, STEPS)
    stalled = next(c for c in decision.status.conditions if c.type == "Stalled")
    assert (stalled.status.value, stalled.reason) == ("True", "InconsistentStatus")
    assert Expire() not in decision.actions
    trusted = decide(ObservedFulfillment("f", "uid-1", 1, clock.spec, real), real.completed_at, STEPS)
    assert Expire() in trusted.actions  # the real one, with the same time to live, is due


def test_a_cancelled_status_without_spec_cancelled_is_reported_and_never_expires() -> None:
    clock = Clock(started=True, ttlSecondsAfterFinished=0).reconcile()
    clock.status = clock.status.model_copy(update={"phase": FulfillmentPhase.CANCELLED, "completed_at": T0})
    decision = decide(ObservedFulfillment("f", "uid-1", 1, clock.spec, clock.status), clock.now, STEPS)
    stalled = next(c for c in decision.status.conditions if c.type == "Stalled")
    assert (stalled.status.value, stalled.reason) == ("True", "InconsistentStatus")
    assert Expire() not in decision.actions


def test_next_look_is_the_running_steps_end_an_unacknowledged_signal_or_the_due_time() -> None:
    def look(status: dict[str, Any], generation: int = 1, **fields: Any) -> float | None:
        observed = ObservedFulfillment(
            "f", "uid-1", generation, spec(**fields), FulfillmentStatus.model_validate(status), created_at=T0
        )
        return next_look(observed, T0 + datetime.timedelta(seconds=4), StepTimes(picking=10, packing=10))

    picking = {"phase": "Picking", "observedGeneration": 1, "stepResumedAt": T0.isoformat(), "stepElapsedSeconds": 0}
    assert look(picking) == 6
    assert look({**picking, "stepElapsedSeconds": 9}) == 0  # overdue: now
    assert look(picking, generation=2) == 0  # a signal not yet acknowledged
    assert look({**picking, "paused": True, "stepResumedAt": None}) is None
    assert look({**picking, "dueAt": (T0 + datetime.timedelta(seconds=5)).isoformat()}) == 1
    assert look({"phase": "Shipped", "observedGeneration": 1}) is None
    assert look({"phase": "Pending", "observedGeneration": 1}) is None
