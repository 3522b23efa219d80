"""Fulfillment: an independent workflow, driven by ``spec`` (signals) and read through ``status``.

Whoever creates a Fulfillment (the order controller, or a person with kubectl) talks to it only
through these two halves: desired state in ``spec``, actual state in the ``status`` subresource.
"""

from __future__ import annotations

import datetime
import enum

from pydantic import ConfigDict, Field

from orderflow.api.common import (
    CONDITIONS_EXTRA,
    DEADLINE_MAX,
    DNS_SUBDOMAIN,
    HISTORY_LIMIT,
    ITEMS_FIELD_RULES,
    MAX_ITEMS,
    ONE_LINE,
    ONE_LINE_RULES,
    TTL_DESCRIPTION,
    TTL_MAX,
    Condition,
    Email,
    HistoryEntry,
    Item,
    Model,
    ShippingAddress,
    StepDurations,
    active_deadline_description,
    cel,
    one_way,
    unchanged,
)

KIND = "Fulfillment"
PLURAL = "fulfillments"


class FulfillmentPhase(enum.StrEnum):
    PENDING = "Pending"
    PICKING = "Picking"
    PACKING = "Packing"
    SHIPPED = "Shipped"
    CANCELLED = "Cancelled"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (FulfillmentPhase.SHIPPED, FulfillmentPhase.CANCELLED, FulfillmentPhase.FAILED)


class TimedStep(enum.StrEnum):
    """The steps that take time, in order; Shipped follows the last one."""

    PICKING = "Picking"
    PACKING = "Packing"


STEPS: tuple[FulfillmentPhase, ...] = tuple(FulfillmentPhase(step.value) for step in TimedStep)


class OrderReference(Model):
    """The Order this Fulfillment was started for. Informational: the Fulfillment never reads Orders."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="The Order's name.")
    uid: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$", description="The Order's metadata.uid.")
    namespace: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The Order's namespace; unset: this Fulfillment's own. For people reading it.",
    )
    cluster: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="The cluster the Order lives in, as its order controller names it (--cluster-name); "
        "unset: this one. For people reading it.",
    )


class SimulatedFailure(Model):
    """Failure injection for demos and tests: the workflow fails when it reaches this step."""

    step: TimedStep = Field(description="The step at which to fail: Picking or Packing.")
    message: str = Field(
        default="simulated failure",
        max_length=1024,
        pattern=ONE_LINE,
        description="The reason reported in status: one line.",
        json_schema_extra={"x-kubernetes-validations": ONE_LINE_RULES},
    )


FIXED_ONCE_STARTED = ("items", "customerEmail", "stepDurationSeconds", "simulateFailure")


class FulfillmentSpec(Model):
    """Desired state. The signals (started, paused, cancelled, shippingAddress) may change at any
    time; what defines the work (items, customerEmail, stepDurationSeconds, simulateFailure) is
    fixed once the fulfillment has started."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                one_way("started", "a fulfillment that has started cannot be un-started"),
                one_way("cancelled", "a cancelled fulfillment stays cancelled"),
                cel(
                    unchanged("orderRef"),
                    "spec.orderRef cannot be changed, added or removed after creation",
                    field_path=".orderRef",
                ),
                # What defines the work is fixed once it has started; only the signals change after.
                *(
                    cel(
                        f"!has(oldSelf.started) || !oldSelf.started || ({unchanged(field)})",
                        f"spec.{field} is fixed once the fulfillment has started; "
                        "only the signals (paused, cancelled, shippingAddress) may change",
                        field_path=f".{field}",
                        reason="FieldValueForbidden",
                    )
                    for field in FIXED_ONCE_STARTED
                ),
            ]
        }
    )

    order_ref: OrderReference | None = Field(
        default=None, description="The Order this Fulfillment serves, if any. Immutable."
    )
    items: list[Item] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        description="What to pick and pack: at least one item, each SKU once. Fixed once started.",
        json_schema_extra={"x-kubernetes-validations": ITEMS_FIELD_RULES},
    )
    customer_email: Email = Field(
        description="The customer's e-mail address, for shipping notices. Fixed once started."
    )
    shipping_address: ShippingAddress = Field(
        description="Where to ship. Signal: changes are taken until the parcel has shipped, refused after."
    )
    started: bool = Field(
        default=False, description="Signal: start the workflow. One-way: cannot be set back to false."
    )
    paused: bool = Field(default=False, description="Signal: pause (true) or resume (false) the running step.")
    cancelled: bool = Field(
        default=False,
        description="Signal: cancel before shipping. One-way. Refused (and reported) once shipped.",
    )
    step_duration_seconds: StepDurations | None = Field(
        default=None,
        description="Per-object override of step durations, for demos and tests. "
        "Unset steps take the controller's default. Fixed once started.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=TTL_MAX,
        description=TTL_DESCRIPTION + " A signal. The controller's default applies only to Fulfillments "
        "without an orderRef: one serving an Order gets its time to live from the Order, when the Order goes.",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=DEADLINE_MAX,
        description=active_deadline_description("the fulfillment")
        + " A signal. Unset: the controller's default (--active-deadline-seconds), as recorded in "
        "status.dueAt when the workflow first saw it; without one there is no deadline.",
    )
    simulate_failure: SimulatedFailure | None = Field(
        default=None, description="Failure injection for demos and tests: fail at the given step. Fixed once started."
    )


class FulfillmentProgress(Model):
    """How far the workflow has come."""

    current_step: str = Field(description="The phase the workflow is in.")
    completed_steps: int = Field(ge=0, description="Steps done (Picking, Packing, Shipping).")
    total_steps: int = Field(ge=1, description="Steps in all.")
    percent: int = Field(ge=0, le=100, description="completedSteps / totalSteps, in percent.")


class FulfillmentStatus(Model):
    """Actual state, written only by the fulfillment controller. Everything needed to resume."""

    phase: FulfillmentPhase = Field(default=FulfillmentPhase.PENDING, description="Where the workflow is.")
    progress: FulfillmentProgress | None = Field(default=None, description="How far it has come.")
    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation last acted on: a signal is acknowledged when this "
        "reaches the generation its spec change produced.",
    )
    paused: bool = Field(default=False, description="Whether the running step is paused now.")
    started_at: datetime.datetime | None = Field(default=None, description="When the workflow started.")
    step_started_at: datetime.datetime | None = Field(default=None, description="When the current step started.")
    step_elapsed_seconds: float = Field(
        default=0,
        ge=0,
        description="Time spent in the current step up to stepResumedAt (paused time is not counted).",
    )
    step_resumed_at: datetime.datetime | None = Field(
        default=None, description="When the step last started running; unset while paused."
    )
    completed_at: datetime.datetime | None = Field(
        default=None, description="When it reached Shipped, Cancelled or Failed."
    )
    tracking_number: str | None = Field(default=None, description="The parcel's tracking number, once shipped.")
    shipping_address: ShippingAddress | None = Field(
        default=None, description="The address in effect: the last one accepted from spec."
    )
    failure_message: str | None = Field(default=None, description="Why it failed, when phase is Failed.")
    failure_reason: str | None = Field(
        default=None,
        description="Why it failed, as one CamelCase word, when the cause is not a step's own failure: "
        "DeadlineExceeded (spec.activeDeadlineSeconds passed first).",
    )
    due_at: datetime.datetime | None = Field(
        default=None,
        description="When the workflow must have finished: metadata.creationTimestamp plus "
        "spec.activeDeadlineSeconds (or the controller's default, when spec sets none). Unset: no deadline.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (shipped), Reconciling, Stalled, Paused and Accepted (signals taken).",
        json_schema_extra=CONDITIONS_EXTRA,
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=f"The last {HISTORY_LIMIT} transitions, oldest first.",
    )
