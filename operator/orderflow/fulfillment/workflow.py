"""The fulfillment workflow as a pure function: state in, decision out. No Kopf, no I/O.

Everything the workflow needs to continue lives in ``status``: the phase, when the current step
started, how much of it had elapsed when it was last paused or resumed. So a controller that is
killed at any moment and restarted calls ``decide`` with the same status and continues the same
step with the time already spent counted; and because each transition is computed from the
status it replaces, and written with that status's resourceVersion, no step is done twice.
"""

from __future__ import annotations

import dataclasses
import datetime

from orderflow.api.common import HISTORY_LIMIT, ConditionStatus, HistoryEntry, due_at, seconds_until_expiry
from orderflow.api.evidence import tracking_number, unbelievable
from orderflow.api.fulfillment import (
    STEPS,
    FulfillmentPhase,
    FulfillmentProgress,
    FulfillmentSpec,
    FulfillmentStatus,
    TimedStep,
)
from orderflow.runtime.pure.conditions import (
    NO_ERROR,
    NOT_PAUSED,
    Cond,
    describe_error,
    newly,
    set_condition,
    set_kstatus,
    set_stalled,
)
from orderflow.runtime.pure.events import Event

Phase = FulfillmentPhase
TOTAL_STEPS = len(STEPS) + 1  # the timed steps, then handing the parcel over (Shipped)


@dataclasses.dataclass(frozen=True)
class StepTimes:
    """Default step durations in seconds (the controller's setting); a spec may override each."""

    picking: float = 5.0
    packing: float = 5.0

    def for_step(self, phase: Phase, spec: FulfillmentSpec) -> float:
        override = spec.step_duration_seconds
        if phase is Phase.PICKING:
            return override.picking if override and override.picking is not None else self.picking
        if phase is Phase.PACKING:
            return override.packing if override and override.packing is not None else self.packing
        raise ValueError(f"{phase} is not a timed step")


@dataclasses.dataclass(frozen=True)
class ObservedFulfillment:
    """What the controller read: identity, generation, the parsed spec and status."""

    name: str
    uid: str
    generation: int
    spec: FulfillmentSpec
    status: FulfillmentStatus
    created_at: datetime.datetime | None = None  # metadata.creationTimestamp: a deadline's start


@dataclasses.dataclass(frozen=True)
class Expire:
    """Finished, and its time to live after finishing is over: delete it (as Job's
    ttlSecondsAfterFinished). The order core decides an Order's expiry the same way."""


Action = Expire


@dataclasses.dataclass(frozen=True)
class Decision:
    status: FulfillmentStatus
    events: tuple[Event, ...]
    requeue_after: float | None  # seconds until the running step ends; None when nothing is timed
    completed_steps: tuple[tuple[str, float], ...] = ()  # (step, seconds it ran), for metrics
    transitions: tuple[str, ...] = ()  # the reason of each history entry this decision added
    actions: tuple[Action, ...] = ()  # carried out by the controller, in order
    deadline_lateness: float | None = None  # failed by its deadline now: seconds after the due time


def elapsed(status: FulfillmentStatus, now: datetime.datetime) -> float:
    """Seconds spent in the current step, not counting paused time."""
    running = (now - status.step_resumed_at).total_seconds() if status.step_resumed_at else 0.0
    return status.step_elapsed_seconds + max(0.0, running)


def progress_of(phase: Phase, before: FulfillmentProgress | None) -> FulfillmentProgress:
    if phase is Phase.PENDING:
        done = 0
    elif phase in STEPS:
        done = STEPS.index(phase)
    elif phase is Phase.SHIPPED:
        done = TOTAL_STEPS
    else:  # Cancelled and Failed keep the progress reached; it never goes back
        done = before.completed_steps if before else 0
    return FulfillmentProgress(
        current_step=phase.value,
        completed_steps=done,
        total_steps=TOTAL_STEPS,
        percent=done * 100 // TOTAL_STEPS,
    )


class _Draft:
    """A status being changed, collecting the events and history entries the changes make."""

    def __init__(self, observed: ObservedFulfillment) -> None:
        self.status = observed.status.copied()
        self.events: list[Event] = []
        self.completed_steps: list[tuple[str, float]] = []
        self.transitions: list[str] = []

    def record(self, at: datetime.datetime, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))
        self.transitions.append(reason)
        entry = HistoryEntry(time=at, phase=self.status.phase.value, reason=reason, message=message)
        self.status.history = [*self.status.history, entry][-HISTORY_LIMIT:]

    def enter(self, phase: Phase, at: datetime.datetime, reason: str, message: str, warning: bool = False) -> None:
        s = self.status
        s.phase = phase
        s.progress = progress_of(phase, s.progress)
        if phase.terminal:
            s.completed_at = at
            s.step_started_at = None
            s.step_resumed_at = None
            s.step_elapsed_seconds = 0
            s.paused = False
        else:
            s.step_started_at = at
            s.step_elapsed_seconds = 0
            s.step_resumed_at = None if s.paused else at
        self.record(at, reason, message, warning)


def next_look(observed: ObservedFulfillment, now: datetime.datetime, defaults: StepTimes) -> float | None:
    """Seconds until ``observed`` needs a look even if nothing changes (0: now): a signal not yet
    acknowledged, the end of its running step, its due time; None when nothing is timed.

    For the objects a restart lists: each waits behind the changed ones until its reconcile, which
    is what sets its wake-up. With 10,000 in flight, steps that fell due meanwhile waited minutes
    for the listing to reach them; with this, each gets its wake-up when it is listed."""
    s = observed.status
    if s.phase.terminal:
        return None
    if s.observed_generation != observed.generation:
        return 0.0
    looks: list[float] = []
    if s.phase in STEPS and not s.paused and s.step_resumed_at is not None:
        looks.append(defaults.for_step(s.phase, observed.spec) - elapsed(s, now))
    if s.due_at is not None:
        looks.append((s.due_at - now).total_seconds())
    return max(0.0, min(looks)) if looks else None


def decide(
    observed: ObservedFulfillment,
    now: datetime.datetime,
    defaults: StepTimes,
    default_ttl: int | None = None,
    default_deadline: int | None = None,
) -> Decision:
    """``default_ttl``: the controller's retention, for Fulfillments that set none and serve no
    Order (one serving an Order is given its time to live by the Order, when the Order goes).
    ``default_deadline``: the controller's activeDeadlineSeconds, for Fulfillments that set none."""
    decision = _decide(observed, now, defaults, default_deadline)
    spec = observed.spec
    ttl = spec.ttl_seconds_after_finished
    if ttl is None and spec.order_ref is None:
        ttl = default_ttl
    return _retain(decision, ttl, observed, now)


def _retain(decision: Decision, ttl: int | None, observed: ObservedFulfillment, now: datetime.datetime) -> Decision:
    """A finished Fulfillment lives ``ttl`` seconds after it finished, then expires."""
    status = decision.status
    finished = status.phase.terminal and _inconsistency(status, observed) is None  # a forged end never expires
    left = seconds_until_expiry(status.completed_at if finished else None, ttl, now)
    if left is None:
        return decision
    if left <= 0:
        return dataclasses.replace(decision, actions=(*decision.actions, Expire()), requeue_after=None)
    requeue = left if decision.requeue_after is None else min(left, decision.requeue_after)
    return dataclasses.replace(decision, requeue_after=requeue)


def _decide(
    observed: ObservedFulfillment, now: datetime.datetime, defaults: StepTimes, default_deadline: int | None
) -> Decision:
    spec = observed.spec
    draft = _Draft(observed)
    s = draft.status
    refusals: list[tuple[str, str]] = []
    lateness: float | None = None

    if s.progress is None:
        s.progress = progress_of(s.phase, None)

    # Status is input too: a clock in the future (a restored backup, a skewed writer) would stop
    # the step until then; count it as now, and say so once.
    if s.step_resumed_at is not None and s.step_resumed_at > now:
        draft.events.append(
            Event(
                "Warning",
                "ClockInFuture",
                f"status.stepResumedAt was {s.step_resumed_at.isoformat()}, in the future; counting from now",
            )
        )
        s.step_resumed_at = now

    # The deadline goes first: what happened by the due time counts, nothing after it does (a
    # signal read after the due time comes too late, whenever it was sent).
    if not s.phase.terminal:
        s.due_at = _due(observed, default_deadline)
    if s.due_at is not None and s.due_at <= now and not s.phase.terminal:
        _advance(draft, observed, s.due_at, defaults)  # steps that ended by the due time still count
        if not s.phase.terminal:
            lateness = (now - s.due_at).total_seconds()
            s.failure_message = f"deadline exceeded: due at {s.due_at.isoformat()}, during {s.phase.value}"
            s.failure_reason = "DeadlineExceeded"
            draft.enter(Phase.FAILED, s.due_at, "DeadlineExceeded", s.failure_message, warning=True)

    # The address: taken until shipped (or otherwise finished), refused after.
    if s.shipping_address is None:
        s.shipping_address = spec.shipping_address
    elif s.shipping_address != spec.shipping_address:
        if s.phase.terminal:
            refusals.append(
                ("AddressChangeRefused", f"the shipping address cannot change: the fulfillment is {s.phase.value}")
            )
        else:
            s.shipping_address = spec.shipping_address
            # Not the address itself: Events and history are read by many (kubectl describe, log
            # pipelines that collect Events) and must not carry personal data; spec has it.
            draft.events.append(Event("Normal", "AddressChanged", "shipping address changed"))

    if spec.cancelled and not s.phase.terminal:
        draft.enter(Phase.CANCELLED, now, "Cancelled", f"cancelled while {s.phase.value}")
    elif spec.cancelled and s.phase is Phase.SHIPPED:
        refusals.append(("CancelRefused", "cannot cancel: the parcel has already shipped"))

    if spec.started and s.phase is Phase.PENDING:
        s.paused = spec.paused
        s.started_at = now
        draft.enter(Phase.PICKING, now, "Started", "started; picking items")
        if s.paused:
            draft.record(now, "Paused", "started paused")

    if s.phase in STEPS and spec.paused != s.paused:
        if spec.paused:
            s.step_elapsed_seconds = elapsed(s, now)
            s.step_resumed_at = None
            s.paused = True
            draft.record(now, "Paused", f"paused during {s.phase.value}")
        else:
            s.step_resumed_at = now
            s.paused = False
            draft.record(now, "Resumed", f"resumed {s.phase.value}")

    requeue_after = _advance(draft, observed, now, defaults)
    if s.due_at is not None and not s.phase.terminal:
        until_due = (s.due_at - now).total_seconds()
        requeue_after = until_due if requeue_after is None else min(requeue_after, until_due)
    if not draft.status.phase.terminal:  # a completedAt belongs to a final phase only (one written by hand)
        draft.status.completed_at = None
    inconsistent = _inconsistency(draft.status, observed)
    if inconsistent and newly(observed.status.conditions, "Stalled", ConditionStatus.TRUE, "InconsistentStatus"):
        draft.events.append(Event("Warning", "InconsistentStatus", inconsistent))
    _set_conditions(draft.status, observed.generation, refusals, now, spec, inconsistent)
    draft.status.observed_generation = observed.generation
    events = _one_event(draft.events)
    for reason, message in refusals:
        # Warn once, when the refusal is new. The condition names only the first refusal's
        # reason but carries every refusal's message: each refusal is known by its message.
        if newly(observed.status.conditions, "Accepted", ConditionStatus.FALSE, message=message):
            events.append(Event("Warning", reason, message))
    return Decision(
        status=draft.status,
        events=tuple(events),
        requeue_after=requeue_after,
        completed_steps=tuple(draft.completed_steps),
        transitions=tuple(draft.transitions),
        deadline_lateness=lateness,
    )


def _due(observed: ObservedFulfillment, default_deadline: int | None) -> datetime.datetime | None:
    """The due time: from spec when it sets a deadline (which may be raised or lowered), else the
    one recorded in status, else the controller's default. Recorded, a default stays as it was
    when the workflow first saw it: a controller restarted with another default changes no
    deadline already promised."""
    spec, recorded = observed.spec, observed.status.due_at
    if spec.active_deadline_seconds is not None:
        return due_at(observed.created_at, spec.active_deadline_seconds)
    if recorded is not None:
        return recorded
    return due_at(observed.created_at, default_deadline)


def _one_event(events: list[Event]) -> list[Event]:
    """What happened at one instant becomes one Event (each transition stays in the history):
    with zero-length steps, Started, Picked and Shipped are one moment, and three Events would
    be three more writes per fulfillment for the API server."""
    if len(events) <= 1:
        return list(events)
    kind = "Warning" if any(e.type == "Warning" for e in events) else "Normal"
    return [Event(kind, events[-1].reason, "; ".join(e.message for e in events))]


def reject_spec(status: FulfillmentStatus, generation: int, error: Exception, now: datetime.datetime) -> Decision:
    """A spec the schema let through but the workflow cannot use: say so, change nothing else."""
    new = status.model_copy(deep=True)
    message = f"spec cannot be used: {describe_error(error)}"
    set_stalled(new.conditions, generation, now, "InvalidSpec", message)  # Paused stays as it was
    new.observed_generation = generation
    warn = newly(status.conditions, "Stalled", ConditionStatus.TRUE, "InvalidSpec")
    events = (Event("Warning", "InvalidSpec", message),) if warn else ()
    return Decision(status=new, events=events, requeue_after=None)


def gave_up(status: FulfillmentStatus, generation: int, error: str, attempts: int, now: datetime.datetime) -> Decision:
    """The retry policy's attempts ran out: Stalled with the last error and the count, until a
    change to the spec starts a fresh round. The next reconcile that succeeds decides anew."""
    new = status.model_copy(deep=True)
    message = (
        f"gave up after {attempts} attempts in a row: {error}; "
        "a change to the spec (or a restart of the fulfillment controller) tries again"
    )
    set_stalled(new.conditions, generation, now, "RetriesExhausted", message)
    return Decision(status=new, events=(Event("Warning", "RetriesExhausted", message),), requeue_after=None)


def _advance(draft: _Draft, observed: ObservedFulfillment, now: datetime.datetime, defaults: StepTimes) -> float | None:
    """Complete every step whose time has run out (a restart may find several); time the next."""
    s, spec = draft.status, observed.spec
    while s.phase in STEPS and not s.paused:
        if s.step_resumed_at is None:
            # A running step with no clock (a status written by hand, or by an older version):
            # go on from now, keeping the time it says was spent, rather than fail.
            s.step_resumed_at = now
            s.step_started_at = s.step_started_at or now
        failure = spec.simulate_failure
        if failure and failure.step == TimedStep(s.phase.value):
            s.failure_message = failure.message
            draft.enter(Phase.FAILED, now, "Failed", f"failed during {s.phase.value}: {failure.message}", warning=True)
            return None
        duration = defaults.for_step(s.phase, spec)
        spent = elapsed(s, now)
        if spent < duration:
            return duration - spent
        # The step ended when its time ran out, which after a restart may be before `now`.
        done_at = s.step_resumed_at + datetime.timedelta(seconds=duration - s.step_elapsed_seconds)
        done_at = min(done_at, now)
        draft.completed_steps.append((s.phase.value, duration))
        if s.phase is Phase.PICKING:
            draft.enter(Phase.PACKING, done_at, "Picked", "items picked; packing")
        else:
            s.tracking_number = tracking_number(observed.uid)
            # The tracking number, not the recipient: no personal data in Events and history.
            draft.enter(Phase.SHIPPED, done_at, "Shipped", f"shipped (tracking number {s.tracking_number})")
    return None


def _inconsistency(s: FulfillmentStatus, observed: ObservedFulfillment) -> str | None:
    """What this controller never writes, so someone else did: reported, never trusted."""
    why = unbelievable(s, observed.uid, observed.spec.cancelled)
    return f"the status {why}: it was written by hand" if why else None


def _set_conditions(
    s: FulfillmentStatus,
    generation: int,
    refusals: list[tuple[str, str]],
    now: datetime.datetime,
    spec: FulfillmentSpec,
    inconsistent: str | None = None,
) -> None:
    """kstatus's reading (docs/status.md): Ready means the spec is done — shipped, cancelled as
    spec.cancelled asked, paused as spec.paused asked, or not started as spec.started says — and
    Stalled means it cannot get there without a change; Reconciling means work in progress."""
    T, F = ConditionStatus.TRUE, ConditionStatus.FALSE
    running = s.phase in STEPS and not s.paused

    ready: Cond
    if inconsistent:
        ready = (F, "InconsistentStatus", inconsistent)
    elif s.phase is Phase.SHIPPED:
        ready = (T, "Shipped", f"shipped; tracking number {s.tracking_number}")
    elif s.phase is Phase.CANCELLED:
        ready = (T, "Cancelled", "cancelled, as spec.cancelled asked")
    elif s.phase is Phase.FAILED:
        ready = (F, s.failure_reason or "Failed", s.failure_message or "failed")
    elif s.phase is Phase.PENDING and not spec.started:
        ready = (T, "NotStarted", "waiting for spec.started=true; nothing to do until then")
    elif s.phase is Phase.PENDING:
        ready = (F, "Starting", "starting")
    elif s.paused:
        ready = (T, "Paused", f"paused during {s.phase.value}, as spec.paused asked; set it to false to resume")
    else:
        ready = (F, "InProgress", f"{s.phase.value} in progress")

    reconciling: Cond
    if running:
        reconciling = (T, "Progressing", f"{s.phase.value} in progress")
    elif s.paused and s.phase in STEPS:
        reconciling = (F, "Paused", f"paused during {s.phase.value}")
    elif s.phase is Phase.PENDING:
        reconciling = (F, "NotStarted", "waiting for spec.started")
    else:
        reconciling = (F, "Finished", f"the fulfillment is {s.phase.value}")

    stalled: Cond
    if inconsistent:
        stalled = (T, "InconsistentStatus", inconsistent)
    elif s.phase is Phase.FAILED:
        stalled = (T, s.failure_reason or "Failed", s.failure_message or "failed")
    else:
        stalled = NO_ERROR
    set_kstatus(s.conditions, generation, now, ready=ready, reconciling=reconciling, stalled=stalled)

    if s.paused:
        paused = (T, "PausedBySignal", f"paused during {s.phase.value}; set spec.paused=false to resume")
    else:
        paused = NOT_PAUSED
    set_condition(s.conditions, "Paused", *paused, generation, now)

    if refusals:
        accepted = (F, refusals[0][0], "; ".join(message for _, message in refusals))
    else:
        accepted = (T, "SignalsApplied", "every signal in spec has been applied")
    set_condition(s.conditions, "Accepted", *accepted, generation, now)
