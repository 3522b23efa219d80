"""The order workflow as a pure function: the Order, its Fulfillment as last seen, the time -> a decision.

Validate -> create the Fulfillment -> start it -> follow its status -> Completed when shipped.
The Fulfillment is known only through its contract (``order.mirror``): its ``status`` (the query)
is mirrored into the Order's status; the Order's wishes reach it only as ``spec`` fields (the
signals), and only when the Order's own desired value changes from what was last sent. A
person's direct patch on the Fulfillment therefore stands until the Order asks for something else.

``decide`` runs named steps in order (``_STEPS``), as Flux's reconcilers do, and sums them up
once at the end; the controller carries out the actions it returns and hands their outcomes to
``after``, the one place where what an action met reaches the status.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

from orderflow.api.common import API_VERSION, ConditionStatus, due_at, seconds_until_expiry
from orderflow.api.fulfillment import KIND as FULFILLMENT_KIND
from orderflow.api.fulfillment import FulfillmentPhase
from orderflow.api.order import (
    DeletionPolicy,
    FulfillmentState,
    OrderPhase,
    OrderSpec,
    OrderStatus,
    SentSignals,
)
from orderflow.order.mirror import FulfillmentAsRead as FulfillmentAsRead  # the input of decide
from orderflow.order.mirror import read, when
from orderflow.order.targets import Place, Refusal
from orderflow.order.targets import fulfillment_name as name_in
from orderflow.runtime.pure.conditions import (
    NOT_PAUSED,
    Cond,
    describe_error,
    get_condition,
    newly,
    set_condition,
    set_kstatus,
    trim,
)
from orderflow.runtime.pure.events import Event

FINALIZER = "order-controller.orderflow.dev/deletion-policy"
ORDER_LABEL = "orderflow.dev/order"
MAX_UNITS_PER_ORDER = 1_000
T, F = ConditionStatus.TRUE, ConditionStatus.FALSE


@dataclasses.dataclass(frozen=True)
class ObservedOrder:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: OrderSpec
    status: OrderStatus
    deleting: bool = False
    has_finalizer: bool = True
    created_at: datetime.datetime | None = None  # metadata.creationTimestamp: the deadline's start


@dataclasses.dataclass(frozen=True)
class Link:
    """How the order controller last found a target's API server: its list and watch of the
    target's Fulfillments. None for the Order's own namespace, which Kopf watches."""

    reachable: bool
    reason: str = "Reachable"  # else Unreachable, Forbidden, KubeconfigRefused
    message: str = ""
    last_reached: datetime.datetime | None = None

    @property
    def needs_a_person(self) -> bool:
        """Down for a reason waiting will not mend: a permission, a refused kubeconfig."""
        return not self.reachable and self.reason != "Unreachable"


# -- actions the controller carries out, in order ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class AddFinalizer:
    pass


@dataclasses.dataclass(frozen=True)
class CreateFulfillment:
    body: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SendSignals:
    spec_patch: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DeleteFulfillment:
    uid: str  # only this object: never a same-name replacement the cache has not shown yet


@dataclasses.dataclass(frozen=True)
class RemoveFinalizer:
    pass


@dataclasses.dataclass(frozen=True)
class Expire:
    """Finished, and its time to live after finishing is over: delete the Order (as Job's
    ttlSecondsAfterFinished). The fulfillment core decides a Fulfillment's expiry the same way."""


Action = AddFinalizer | CreateFulfillment | SendSignals | DeleteFulfillment | RemoveFinalizer | Expire


@dataclasses.dataclass(frozen=True)
class Decision:
    status: OrderStatus | None  # None: leave status alone (the Order is being deleted, or decided again)
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None
    # A failure that may mend by itself (a permission granted, a CRD installed), reported in the
    # status: tried again as the controller's retry policy says, under this reason.
    retry: str | None = None
    fulfillment: str = ""  # the name of the Fulfillment the actions are about (for what they did)
    done: tuple[str, ...] = ()  # what the actions carried out did, in words for the log (``after``)


# -- what an action met, as the controller tells it (``after`` folds it into the decision) ----


@dataclasses.dataclass(frozen=True)
class ApiFailure:
    """An API error an action met that retrying at once cannot fix: the server's code and words."""

    code: int
    message: str


@dataclasses.dataclass(frozen=True)
class Done:
    """Carried out; nothing to record."""


@dataclasses.dataclass(frozen=True)
class Created:
    uid: str  # the uid of the Fulfillment the create made


@dataclasses.dataclass(frozen=True)
class Signalled:
    generation: int  # the Fulfillment generation the signal produced


@dataclasses.dataclass(frozen=True)
class Interrupted:
    """The object changed or went meanwhile (a conflict, already there, gone): the watch brings
    what is there now, and the Order is decided again on it after ``retry_after`` at the latest."""

    retry_after: float


Outcome = Done | Created | Signalled | Interrupted | ApiFailure


def fulfillment_name(order_name: str) -> str:
    """In the Order's own namespace: deterministic, so a retried create finds the first one
    (AlreadyExists is success). In a target: ``targets.fulfillment_name``."""
    return order_name


LABEL_VALUE_MAX = 63


def label_value(name: str) -> str:
    """The Order's name as a label value, valid for every valid Order name: names run to 253
    characters, label values to 63, so a long name keeps its start and gains a hash of the whole
    (``kubectl get fulfillments -l orderflow.dev/order=...`` still finds short names as typed)."""
    if len(name) <= LABEL_VALUE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: LABEL_VALUE_MAX - len(digest) - 1].rstrip('.-_')}-{digest}"


def validate(spec: OrderSpec) -> list[str]:
    """Rules the schema cannot express; each message says what to change."""
    problems = []
    units = sum(item.quantity for item in spec.items)
    if units > MAX_UNITS_PER_ORDER:
        problems.append(
            f"the order has {units} units in all; at most {MAX_UNITS_PER_ORDER} fit one fulfillment, "
            "split it into several orders"
        )
    return problems


def fulfillment_body(order: ObservedOrder, place: Place | None = None, cluster: str | None = None) -> dict[str, Any]:
    spec = order.spec
    place = place or Place(order.namespace)
    ref: dict[str, Any] = {"name": order.name, "uid": order.uid}
    if place.target is not None:
        ref["namespace"] = order.namespace  # a target is shared: say whose it is, for people
    if cluster:
        ref["cluster"] = cluster
    fspec: dict[str, Any] = {
        "orderRef": ref,
        "items": [item.wire() for item in spec.items],
        "customerEmail": spec.customer_email,
        "shippingAddress": spec.shipping_address.wire(),
        "started": True,
        "paused": spec.paused,
        "cancelled": spec.cancelled,
    }
    if spec.step_duration_seconds:
        fspec["stepDurationSeconds"] = spec.step_duration_seconds.wire()
    return {
        "apiVersion": API_VERSION,
        "kind": FULFILLMENT_KIND,
        "metadata": {
            "name": name_in(order.namespace, order.name, place),
            "namespace": place.namespace,
            "labels": {ORDER_LABEL: label_value(order.name)},
            "annotations": {"orderflow.dev/order-uid": order.uid},
        },
        "spec": fspec,
    }


@dataclasses.dataclass(frozen=True)
class Where:
    """Where the Order's Fulfillment lives, as the controller resolved ``spec.target``, and how
    the link to it is. The default: the Order's own namespace, watched by Kopf."""

    place: Place | Refusal | None = None  # None: the Order's own namespace
    link: Link | None = None  # None: always reachable (the Order's own namespace)
    cluster: str | None = None  # this cluster's name (--cluster-name), for orderRef


HERE = Where()


def decide(
    order: ObservedOrder,
    fulfillment: FulfillmentAsRead | None,
    now: datetime.datetime,
    ack_timeout: float,
    default_ttl: int | None = None,
    where: Where = HERE,
) -> Decision:
    """``fulfillment`` is None only when it is known not to exist (the caller has checked).
    ``default_ttl``: the controller's retention for Orders that set none."""
    ttl = order.spec.ttl_seconds_after_finished if order.spec.ttl_seconds_after_finished is not None else default_ttl
    if order.deleting:
        decision = _delete(order, fulfillment, ttl, where, now)
    else:
        decision = _retain(_decide(order, fulfillment, now, ack_timeout, where), ttl, now)
    place = where.place or Place(order.namespace)
    name = name_in(order.namespace, order.name, place) if isinstance(place, Place) else order.name
    return dataclasses.replace(decision, fulfillment=name)


def _retain(decision: Decision, ttl: int | None, now: datetime.datetime) -> Decision:
    """A finished Order lives ``ttl`` seconds after it finished, then is deleted (its finalizer
    then applies the deletion policy to its Fulfillment)."""
    status = decision.status
    left = seconds_until_expiry(status.completed_at if status and status.phase.terminal else None, ttl, now)
    if left is None:
        return decision
    if left <= 0:
        return dataclasses.replace(decision, actions=(*decision.actions, Expire()))
    requeue = left if decision.requeue_after is None else min(left, decision.requeue_after)
    return dataclasses.replace(decision, requeue_after=requeue)


# -- the decision, step by step ----------------------------------------------------------------
#
# As Flux's reconcilers are: a list of named steps (``_STEPS``), run in order on a draft of the
# decision, each saying whether the decision goes on or is made; what they decided is summed up
# once at the end (``_Draft.decision``), where the conditions are set together.


class Next(enum.Enum):
    GO_ON = "go on"
    DECIDED = "decided"


GO_ON, DECIDED = Next.GO_ON, Next.DECIDED


class _Draft:
    """The decision being made: what the steps read, the status as they change it, the actions
    and Events they add, and the conditions they settle on (set together, at the end)."""

    def __init__(
        self,
        order: ObservedOrder,
        fulfillment: FulfillmentAsRead | None,
        now: datetime.datetime,
        ack_timeout: float,
        where: Where,
    ) -> None:
        self.order, self.fulfillment, self.now, self.ack_timeout = order, fulfillment, now, ack_timeout
        self.place: Place | Refusal = where.place or Place(order.namespace)
        self.link, self.cluster = where.link, where.cluster
        self.status = order.status.copied()
        self.actions: list[Action] = [] if order.has_finalizer else [AddFinalizer()]
        self.events: list[Event] = []
        self.requeue_after: float | None = None
        self.past_due = False  # past its deadline, unfinished (``_deadline`` says)
        self.kstatus: tuple[Cond, Cond | None, Cond | None, Cond | None] | None = None  # Ready ... Paused
        self.conditions: dict[str, Cond] = {}  # TargetReachable, SignalsAccepted, SignalsAcknowledged
        self.tell_unacknowledged = False  # Ready also tells of a signal nobody acknowledges

    @property
    def here(self) -> Place:
        """Where its Fulfillment lives (after ``_refused_target``, never a refusal)."""
        assert isinstance(self.place, Place)
        return self.place

    @property
    def created(self) -> bool:
        """A Fulfillment is recorded as this Order's (created, or adopted)."""
        return self.status.fulfillment is not None

    @property
    def finished(self) -> bool:
        return self.status.phase.terminal

    def warn(self, reason: str, message: str) -> None:
        self.events.append(Event("Warning", reason, message))

    def conclude(
        self, ready: Cond, reconciling: Cond | None = None, stalled: Cond | None = None, paused: Cond | None = None
    ) -> None:
        """What kstatus's three (and Paused) are to say; unless given, Reconciling is False for
        Ready's reason, Stalled is NoError, and Paused NotPaused."""
        self.kstatus = (ready, reconciling, stalled, paused)

    def stall(self, reason: str, message: str) -> Next:
        """Stalled for ``reason``: a condition always, a Warning Event only when it is new."""
        if newly(self.order.status.conditions, "Stalled", T, reason):
            self.warn(reason, message)
        self.conclude(ready=(F, reason, message), stalled=(T, reason, message))
        return DECIDED

    def decision(self) -> Decision:
        """The steps' decision summed up: the conditions set in one place, the status stamped."""
        s, gen, now = self.status, self.order.generation, self.now
        if self.kstatus is not None:
            _conditions(s, gen, now, *self.kstatus)
        for type_, (status, reason, message) in self.conditions.items():
            set_condition(s.conditions, type_, status, reason, message, gen, now)
        if self.tell_unacknowledged:
            _say_unacknowledged(s, gen, now)
        if not s.phase.terminal:  # a completedAt belongs to a final phase only (one written by hand)
            s.completed_at = None
        s.observed_generation = gen
        return Decision(
            status=s, actions=tuple(self.actions), events=tuple(self.events), requeue_after=self.requeue_after
        )


def _decide(
    order: ObservedOrder,
    fulfillment: FulfillmentAsRead | None,
    now: datetime.datetime,
    ack_timeout: float,
    where: Where = HERE,
) -> Decision:
    draft = _Draft(order, fulfillment, now, ack_timeout, where)
    for step in _STEPS:
        if step(draft) is DECIDED:
            break
    return draft.decision()


def _refused_target(d: _Draft) -> Next:
    """A target this Order may not use: nothing is created anywhere, nothing is touched."""
    if not isinstance(d.place, Refusal):
        return GO_ON
    if d.finished:
        return DECIDED
    return d.stall(d.place.reason, d.place.message)


def _deadline(d: _Draft) -> Next:
    """Whether the order is past its deadline, unfinished: the first decision to find it so records
    when (``deadlineExceededAt``, final) and warns once. The due time follows the spec until then
    (a raised deadline moves it), and is derived from the creation time the API server recorded,
    so a restarted controller finds the same one, and acts on it once. A cancel the customer asked
    for comes first: the order ends Cancelled, as asked, whatever the clock says."""
    s, order = d.status, d.order
    if s.phase.terminal or (order.spec.cancelled and s.deadline_exceeded_at is None):
        return GO_ON
    if s.deadline_exceeded_at is not None:
        d.past_due = True
        return GO_ON
    s.due_at = due_at(order.created_at, order.spec.active_deadline_seconds)
    if s.due_at is None or s.due_at > d.now:
        return GO_ON
    if d.fulfillment is not None and d.fulfillment.shipped:
        return GO_ON  # shipped first: Completed, whenever the order controller gets to see it
    s.deadline_exceeded_at = d.now
    d.past_due = True
    what = f"cancelling Fulfillment {s.fulfillment.name}" if s.fulfillment else "no Fulfillment was started"
    d.warn("DeadlineExceeded", f"the order was due at {when(s.due_at)} and has not shipped; {what}")
    return GO_ON


def _target_link(d: _Draft) -> Next:
    """TargetReachable: the order controller's list and watch of the target's Fulfillments.

    A link that is down is a normal state: keep the last known status of the Fulfillment, send
    nothing (the signals wait in spec, and go once it is reachable: they are level-triggered), and
    say so. Waiting mends an outage; a refused permission or kubeconfig needs a person: Stalled."""
    link = d.link
    if link is None:
        return GO_ON
    where = f"target {d.here.name} (namespace {d.here.namespace})"
    if link.reachable:
        d.conditions["TargetReachable"] = (T, "Reachable", f"{where} is reachable")
        return GO_ON
    since = (
        f"last reached {when(link.last_reached)}" if link.last_reached else "not reached since the controller started"
    )
    message = f"{where} cannot be reached ({since}): {link.message}"
    if newly(d.order.status.conditions, "TargetReachable", F, link.reason):
        d.warn("TargetUnreachable" if link.reason == "Unreachable" else link.reason, message)
    d.conditions["TargetReachable"] = (F, link.reason, message)
    if d.finished:
        return GO_ON
    waiting = trim(message) + "; signals are sent once it is reachable"
    if link.needs_a_person:
        d.conclude(ready=(F, link.reason, waiting), stalled=(T, link.reason, waiting))
    else:
        d.conclude(ready=(F, "TargetUnreachable", waiting), reconciling=(T, "TargetUnreachable", waiting))
    return DECIDED


def _too_late_to_start(d: _Draft) -> Next:
    """Past its deadline before a Fulfillment of its own was started: Failed at once (a cancel
    the customer asked for comes first)."""
    f = d.fulfillment
    if d.created or not d.past_due or d.order.spec.cancelled or (f is not None and is_ours(d.order, None, f)):
        return GO_ON
    return _deadline_failed(d, "no Fulfillment was started")


def _validate(d: _Draft) -> Next:
    """Rules the schema cannot express (``validate``), checked before anything is created."""
    problems = [] if d.created else validate(d.order.spec)
    if not problems:
        return GO_ON
    message = "; ".join(problems)
    d.status.phase = OrderPhase.INVALID
    d.conclude(ready=(F, "InvalidSpec", message), stalled=(T, "InvalidSpec", message))
    if newly(d.order.status.conditions, "Stalled", T, "InvalidSpec"):
        d.warn("InvalidSpec", message)
    return DECIDED


def _cancelled_before_start(d: _Draft) -> Next:
    """Cancelled before a Fulfillment was created: none ever is."""
    if d.created or not d.order.spec.cancelled:
        return GO_ON
    d.status.phase = OrderPhase.CANCELLED
    d.status.completed_at = _finished_at(d.order.status, OrderPhase.CANCELLED, d.now)
    d.conclude(ready=(T, "Cancelled", "cancelled before fulfillment started, as asked"))
    if d.order.status.phase is not OrderPhase.CANCELLED:
        d.events.append(Event("Normal", "Cancelled", "cancelled before fulfillment started"))
    return DECIDED


def _create(d: _Draft) -> Next:
    """Create the Fulfillment, started, with the Order's wishes as the first signals sent."""
    if d.created or d.fulfillment is not None:
        return GO_ON
    s, spec, place = d.status, d.order.spec, d.here
    body = fulfillment_body(d.order, place, d.cluster)
    name = body["metadata"]["name"]
    d.actions.append(CreateFulfillment(body))
    s.fulfillment = FulfillmentState(
        name=name,
        namespace=place.namespace if place.target else None,
        target=place.name,
        phase=FulfillmentPhase.PENDING.value,
    )
    s.signals = SentSignals(
        paused=spec.paused,
        cancelled=spec.cancelled,
        shipping_address=spec.shipping_address,
        generation=1,
        sent_at=d.now,
    )
    s.phase = OrderPhase.FULFILLING
    d.events.append(Event("Normal", "FulfillmentCreated", f"created and started Fulfillment {name}"))
    d.conclude(
        ready=(F, "Fulfilling", "fulfillment started"),
        reconciling=(T, "Fulfilling", "waiting for the fulfillment to report"),
    )
    _acknowledgement(d)
    d.requeue_after = d.ack_timeout
    return DECIDED


def _adopt(d: _Draft) -> Next:
    """One of its name exists, and none is recorded yet: ours from an earlier attempt (a restart
    lost the status write) is adopted; anyone else's is reported, and never touched."""
    if d.created:
        return GO_ON
    f, place = d.fulfillment, d.here
    assert f is not None
    if not is_ours(d.order, None, f):
        message = (
            f"a Fulfillment named {f.name} already exists and belongs to "
            f"{'another order' if f.order_uid else 'no order'}; "
            "rename the Order or remove that Fulfillment"
        )
        return d.stall("FulfillmentNameTaken", message)
    d.status.fulfillment = FulfillmentState(
        name=f.name,
        namespace=place.namespace if place.target else None,
        target=place.name,
        uid=f.uid,
    )
    d.status.signals = SentSignals(
        paused=f.paused,
        cancelled=f.cancelled,
        shipping_address=f.shipping_address,
        generation=f.generation,
        sent_at=d.now,
    )
    return GO_ON


def _identity(d: _Draft) -> Next:
    """Identity, not name: only the very Fulfillment this Order created is followed. One gone, or
    another object of its name, is reported (and past the deadline, the order has failed)."""
    recorded, f = d.status.fulfillment, d.fulfillment
    assert recorded is not None
    ours = f is not None and is_ours(d.order, recorded, f)
    if d.past_due and not ours:
        return DECIDED if d.finished else _deadline_failed(d, f"Fulfillment {recorded.name} is gone")
    if f is None:
        if d.finished:  # it finished; someone tidied it away afterwards
            return DECIDED
        message = (
            f"Fulfillment {recorded.name} was deleted before it finished; this order cannot complete. "
            "Delete and re-create the Order to start over."
        )
        return d.stall("FulfillmentMissing", message)
    if not ours:  # ours was deleted, someone made a new one: never mirror, signal, cancel or delete it
        message = (
            f"Fulfillment {f.name} is not the one this order created (uid {recorded.uid or '?'}, "
            f"found {f.uid}{', made for another order' if f.order_uid else ', made by hand'}); it is left alone. "
            "Delete and re-create the Order to start over."
        )
        return d.stall("FulfillmentReplaced", message)
    return GO_ON


def _signals(d: _Draft) -> Next:
    """Send only what the Order's own desired value changed since it was last sent."""
    f, spec = d.fulfillment, d.order.spec
    assert f is not None
    signals = d.status.signals or SentSignals()
    patch: dict[str, Any] = {}
    if spec.paused != signals.paused:
        patch["paused"] = spec.paused
    terminal = f.status.phase.terminal
    # Past its deadline, an order cancels a Fulfillment still at work (one that has finished has
    # nothing left to cancel: a parcel that shipped first is shipped).
    cancel = spec.cancelled or (d.past_due and not terminal)
    if cancel and not signals.cancelled:
        patch["cancelled"] = True
    if spec.shipping_address != signals.shipping_address:
        patch["shippingAddress"] = spec.shipping_address.wire()
    if patch and not (terminal and set(patch) == {"paused"}):
        d.actions.append(SendSignals(patch))
        d.status.signals = SentSignals(
            paused=spec.paused,
            cancelled=cancel or signals.cancelled,
            shipping_address=spec.shipping_address,
            generation=None,  # filled in from the Fulfillment's new generation once written (``after``)
            sent_at=d.now,
        )
        sent = ", ".join(_describe(k, v) for k, v in sorted(patch.items()))
        d.events.append(Event("Normal", "SignalSent", f"sent {sent} to Fulfillment {f.name}"))
    return GO_ON


def _mirror(d: _Draft) -> Next:
    """Mirror the Fulfillment's status; the Order's phase and conditions follow from it (``mirror.read``)."""
    assert d.fulfillment is not None
    reading = read(d.fulfillment, d.order.spec, d.status, d.order.status)
    d.status.fulfillment, d.status.phase = reading.fulfillment, reading.phase
    if reading.phase.terminal:
        d.status.completed_at = _finished_at(d.order.status, reading.phase, d.now)
    d.events.extend(reading.events)
    d.conclude(reading.ready, reading.reconciling, reading.stalled, reading.paused)
    d.conditions["SignalsAccepted"] = reading.accepted
    return GO_ON


def _acknowledge(d: _Draft) -> Next:
    """Has the Fulfillment acknowledged the last signal? Look again when it is due to have."""
    d.requeue_after = _acknowledgement(d)
    d.tell_unacknowledged = True
    return GO_ON


def _until_due(d: _Draft) -> Next:
    """Look again at the due time, if it is still ahead."""
    due = d.status.due_at
    if due is not None and not d.past_due and not d.finished:
        until_due = (due - d.now).total_seconds()
        d.requeue_after = until_due if d.requeue_after is None else min(d.requeue_after, until_due)
    return DECIDED


_STEPS: tuple[Callable[[_Draft], Next], ...] = (
    _refused_target,
    _deadline,
    _target_link,
    # Until a Fulfillment is recorded as the Order's:
    _too_late_to_start,
    _validate,
    _cancelled_before_start,
    _create,
    _adopt,
    # Then, on the Fulfillment it recorded:
    _identity,
    _signals,
    _mirror,
    _acknowledge,
    _until_due,
)


def _deadline_failed(d: _Draft, why: str) -> Next:
    """Past its deadline with no Fulfillment of its own to cancel: Failed at once."""
    s = d.status
    assert s.due_at is not None
    message = f"the order was due at {when(s.due_at)}; {why}"
    s.phase = OrderPhase.FAILED
    s.completed_at = _finished_at(d.order.status, OrderPhase.FAILED, d.now)
    d.conclude(ready=(F, "DeadlineExceeded", message), stalled=(T, "DeadlineExceeded", message))
    d.warn("Failed", f"order failed: {message}")
    return DECIDED


def _acknowledgement(d: _Draft) -> float | None:
    """SignalsAcknowledged: has the Fulfillment's observedGeneration reached the last signal's?
    Returns the seconds left to wait for it."""
    signals, f = d.status.signals, d.fulfillment
    acked_generation = f.status.observed_generation if f else None
    wanted = signals.generation if signals else None
    if signals is None or (wanted is None and signals.sent_at is None):
        return None
    if wanted is not None and acked_generation is not None and acked_generation >= wanted:
        d.conditions["SignalsAcknowledged"] = (T, "Acknowledged", f"the fulfillment acknowledged generation {wanted}")
        return None
    waited = (d.now - (signals.sent_at or d.now)).total_seconds()
    if waited < d.ack_timeout:
        waiting = "waiting for the fulfillment controller to acknowledge the last signal"
        d.conditions["SignalsAcknowledged"] = (F, "Waiting", waiting)
        return d.ack_timeout - waited
    acked = "it has no status yet" if acked_generation is None else f"acknowledged {acked_generation}"
    message = (
        f"the fulfillment has not acknowledged the signal sent {waited:.0f}s ago "
        f"(generation {wanted}, {acked}); is the fulfillment controller running?"
    )
    if newly(d.order.status.conditions, "SignalsAcknowledged", F, "NotAcknowledged"):
        d.warn("NotAcknowledged", message)
    d.conditions["SignalsAcknowledged"] = (F, "NotAcknowledged", message)
    return None


def _say_unacknowledged(status: OrderStatus, gen: int, now: datetime.datetime) -> None:
    """An order waiting on a signal nobody acknowledges says so where people look: Ready."""
    acked, ready = get_condition(status.conditions, "SignalsAcknowledged"), get_condition(status.conditions, "Ready")
    if acked and acked.reason == "NotAcknowledged" and ready and ready.status is F:
        set_condition(status.conditions, "Ready", F, ready.reason, f"{ready.message}; {acked.message}", gen, now)


def after(order: ObservedOrder, decision: Decision, outcomes: Sequence[Outcome], now: datetime.datetime) -> Decision:
    """The decision as its actions' outcomes leave it: the one place where what an action met
    reaches the status. ``outcomes`` answer ``decision.actions`` in order, up to the first that
    stopped the rest (a failure, an interruption). A created Fulfillment's uid and a signal's
    generation are recorded; a failure ends on the Order (``action_failed``); an interruption
    leaves the status to the next decision. ``done`` says, for the log, what was carried out."""
    status = decision.status
    done: list[str] = []
    for action, outcome in zip(decision.actions, outcomes, strict=False):
        if isinstance(outcome, ApiFailure):
            failed = action_failed(order, order.status, action, outcome, now, decision.fulfillment or None)
            return dataclasses.replace(failed, done=tuple(done))
        if isinstance(outcome, Interrupted):
            return Decision(status=None, requeue_after=outcome.retry_after, done=tuple(done))
        done.append(describe_action(action, decision.fulfillment))
        if isinstance(outcome, Created) and status is not None:
            status = with_created(status, outcome.uid)
        elif isinstance(outcome, Signalled) and status is not None:
            status = with_signal_generation(status, outcome.generation)
    return dataclasses.replace(decision, status=status, done=tuple(done))


def describe_action(action: Action, name: str) -> str:
    """What carrying out ``action`` on the Fulfillment ``name`` did, in a few words for the
    controller's log: its name and the signals' values, never an address (a changed one is only
    "changed")."""
    if isinstance(action, AddFinalizer):
        return "added finalizer"
    if isinstance(action, RemoveFinalizer):
        return "removed finalizer"
    if isinstance(action, CreateFulfillment):
        return f"created Fulfillment {action.body['metadata']['name']}"
    if isinstance(action, SendSignals):
        return f"sent signals {', '.join(_describe(k, v) for k, v in sorted(action.spec_patch.items()))}"
    if isinstance(action, DeleteFulfillment):
        return f"deleted Fulfillment {name}"
    if isinstance(action, Expire):
        return "deleted the Order (its time to live after finishing is over)"
    return type(action).__name__


_VERBS = {CreateFulfillment: "create", SendSignals: "signal", DeleteFulfillment: "delete"}


def action_failed(
    order: ObservedOrder,
    before: OrderStatus,
    action: Action,
    failure: ApiFailure,
    now: datetime.datetime,
    name: str | None = None,
) -> Decision:
    """Every error the controller cannot retry its way out of at once ends on the Order — a
    condition and one Warning Event with the server's message — never only in a log. A missing API
    or a missing permission may come back by itself (a chart installed, RBAC fixed): tried again as
    the retry policy says. A refusal of what was sent (400, 422) will not: it waits for a change to
    the Order."""
    verb = _VERBS.get(type(action), "update")
    name = name or fulfillment_name(order.name)
    retry: str | None
    if failure.code == 404 and isinstance(action, CreateFulfillment):
        reason = retry = "FulfillmentAPIUnavailable"
        message = "the Fulfillment API (fulfillments.orderflow.dev) is not installed; install its CRD"
    elif failure.code == 403:
        reason = retry = "FulfillmentForbidden"
        message = f"not allowed to {verb} Fulfillments: {failure.message}"
    else:
        reason, retry = "FulfillmentRejected", None
        message = f"the API server refused to {verb} Fulfillment {name} ({failure.code}): {failure.message}"
    events = (Event("Warning", reason, message),) if newly(before.conditions, "Stalled", T, reason) else ()
    return Decision(status=blocked(before, order.generation, reason, message, now), events=events, retry=retry)


def gave_up(
    before: OrderStatus, generation: int, reason: str, error: str, attempts: int, now: datetime.datetime
) -> Decision:
    """The retry policy's attempts ran out: Stalled with the last error and the count, until a
    change to the Order's spec starts a fresh round."""
    message = (
        f"gave up after {attempts} attempts in a row: {error}; "
        "a change to the Order's spec (or a restart of the order controller) tries again"
    )
    events = (Event("Warning", "RetriesExhausted", message),)
    return Decision(status=blocked(before, generation, reason, message, now), events=events)


def reject_spec(status: OrderStatus, generation: int, error: Exception, now: datetime.datetime) -> Decision:
    """A spec the schema let through but this controller cannot read (an older CRD, say)."""
    message = f"spec cannot be used: {describe_error(error)}"
    events = (
        (Event("Warning", "InvalidSpec", message),) if newly(status.conditions, "Stalled", T, "InvalidSpec") else ()
    )
    return Decision(status=blocked(status, generation, "InvalidSpec", message, now), events=events)


def is_ours(order: ObservedOrder, recorded: FulfillmentState | None, f: FulfillmentAsRead) -> bool:
    """Identity, not name: the Fulfillment names this Order's uid, and is the very object this
    Order recorded (its uid, which the API server gives and nobody can choose)."""
    if f.order_uid != order.uid:
        return False
    return recorded is None or recorded.uid is None or recorded.uid == f.uid


def with_created(status: OrderStatus, uid: str) -> OrderStatus:
    """Record the uid of the Fulfillment just created: from now on only that object is ours."""
    new = status.model_copy(deep=True)
    if new.fulfillment:
        new.fulfillment.uid = uid
    return new


def with_signal_generation(status: OrderStatus, generation: int) -> OrderStatus:
    """Record the Fulfillment generation a signal produced: its acknowledgement is reaching it."""
    new = status.model_copy(deep=True)
    if new.signals:
        new.signals.generation = generation
    return new


def blocked(before: OrderStatus, generation: int, reason: str, message: str, now: datetime.datetime) -> OrderStatus:
    """The order cannot go on (Fulfillment API missing or forbidden, name taken, unreadable spec)."""
    status = before.model_copy(deep=True)
    _conditions(status, generation, now, ready=(F, reason, message), stalled=(T, reason, message))
    status.observed_generation = generation
    return status


def _delete(
    order: ObservedOrder, fulfillment: FulfillmentAsRead | None, ttl: int | None, where: Where, now: datetime.datetime
) -> Decision:
    if not order.has_finalizer:
        return Decision(status=None)
    actions: list[Action] = []
    policy = order.spec.deletion_policy
    link = where.link
    if link is not None and not link.reachable and policy is not DeletionPolicy.ORPHAN and order.status.fulfillment:
        # The policy is carried out on the Fulfillment, which cannot be reached: wait, and say so.
        status = order.status.copied()
        target = order.status.fulfillment.target or "its target"
        message = (
            f"deletionPolicy {policy.value} waits for target {target} to be reachable again "
            f"({link.message}); set deletionPolicy Orphan to let go at once"
        )
        _conditions(status, order.generation, now, ready=(F, "DeletionWaitsForTarget", message))
        set_condition(status.conditions, "TargetReachable", F, link.reason, link.message, order.generation, now)
        return Decision(status=status)
    if fulfillment is not None and is_ours(order, order.status.fulfillment, fulfillment):
        if policy is DeletionPolicy.CANCEL:
            # Cancel, and let it finish its own lifecycle: with retention, that ends the same
            # time after its own end (never before this Order is gone: it is set only now).
            signals: dict[str, Any] = {}
            if not fulfillment.cancelled and not fulfillment.status.phase.terminal:
                signals["cancelled"] = True
            if ttl is not None and fulfillment.ttl_seconds_after_finished is None:
                signals["ttlSecondsAfterFinished"] = _outliving(ttl, fulfillment.status.completed_at, now)
            if signals:
                actions.append(SendSignals(signals))
        elif policy is DeletionPolicy.DELETE:
            actions.append(DeleteFulfillment(fulfillment.uid))
    actions.append(RemoveFinalizer())
    return Decision(status=None, actions=tuple(actions))


OUTLIVE_SECONDS = 5
"""A Fulfillment given its Order's time to live on deletion goes at least this long after now."""


def _outliving(ttl: int, ended: datetime.datetime | None, now: datetime.datetime) -> int:
    """The Order's time to live for its Fulfillment, counted from the Fulfillment's own end as
    always, but never ending before the Order is gone: a Fulfillment that ended long ago would
    otherwise be deleted at once, racing the removal of the Order's finalizer (seen in
    tests/integration/test_retention.py under load)."""
    if ended is None:
        return ttl
    return max(ttl, math.ceil((now - ended).total_seconds()) + OUTLIVE_SECONDS)


def _conditions(
    status: OrderStatus,
    gen: int,
    now: datetime.datetime,
    ready: Cond,
    reconciling: Cond | None = None,
    stalled: Cond | None = None,
    paused: Cond | None = None,
) -> None:
    set_kstatus(status.conditions, gen, now, ready=ready, reconciling=reconciling, stalled=stalled)
    set_condition(status.conditions, "Paused", *(paused or NOT_PAUSED), gen, now)


def _describe(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{field}={str(value).lower()}"
    return f"{field} (changed)"


def _finished_at(before: OrderStatus, phase: OrderPhase, now: datetime.datetime) -> datetime.datetime:
    """When the Order reached ``phase``: now, unless it was there already. A completedAt written
    before the Order finished (by hand) never counts, so retention runs from the real end."""
    return (before.completed_at or now) if before.phase is phase else now
