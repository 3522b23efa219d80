"""Order: what a customer asked for. Its controller starts and drives one Fulfillment.

``status`` mirrors the Fulfillment's actual state (as read from the Fulfillment's status) and
records the signals last sent, so that a change made directly on the Fulfillment stands until the
Order asks for something else.
"""

from __future__ import annotations

import datetime
import enum

from pydantic import ConfigDict, Field

from orderflow.api.common import (
    CONDITIONS_EXTRA,
    DEADLINE_MAX,
    ITEMS_FIELD_RULES,
    MAX_ITEMS,
    TTL_DESCRIPTION,
    TTL_MAX,
    Condition,
    Email,
    Item,
    Model,
    ShippingAddress,
    StepDurations,
    active_deadline_description,
    cel,
    one_way,
    unchanged,
)

KIND = "Order"
PLURAL = "orders"


class DeletionPolicy(enum.StrEnum):
    CANCEL = "Cancel"
    ORPHAN = "Orphan"
    DELETE = "Delete"


class OrderPhase(enum.StrEnum):
    PENDING = "Pending"
    INVALID = "Invalid"
    FULFILLING = "Fulfilling"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (OrderPhase.COMPLETED, OrderPhase.CANCELLED, OrderPhase.FAILED)


# What defines the order is fixed once its Fulfillment exists (status.fulfillment is set): the
# Fulfillment was made from it and would not follow. The signals (paused, cancelled,
# shippingAddress) and deletionPolicy may change at any time. A rule on the whole object, since
# "exists" is in status; a status write leaves spec as it was, so it always passes.
FIXED_ONCE_FULFILLING = ("items", "customerEmail", "stepDurationSeconds", "target")
ORDER_RULES = (
    *(
        cel(
            "!has(oldSelf.status) || !has(oldSelf.status.fulfillment) || "
            f"({unchanged(field, 'oldSelf.spec', 'self.spec')})",
            f"spec.{field} is fixed once the order's Fulfillment exists; create a new Order to change what is ordered "
            "(paused, cancelled, shippingAddress and deletionPolicy may still change)",
            field_path=f".spec.{field}",
            reason="FieldValueForbidden",
        )
        for field in FIXED_ONCE_FULFILLING
    ),
    # A missed deadline is final: the Fulfillment has been told to cancel, and cannot be untold.
    cel(
        "!has(oldSelf.status) || !has(oldSelf.status.deadlineExceededAt) || "
        f"({unchanged('activeDeadlineSeconds', 'oldSelf.spec', 'self.spec')})",
        "spec.activeDeadlineSeconds is final once the deadline has passed (status.deadlineExceededAt)",
        field_path=".spec.activeDeadlineSeconds",
        reason="FieldValueForbidden",
    ),
)


class OrderSpec(Model):
    """What the customer ordered (items, customerEmail, stepDurationSeconds, target: fixed once the
    Fulfillment exists), and what they or an operator want done with it now (paused, cancelled,
    shippingAddress, deletionPolicy: signals, which may change at any time)."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [one_way("cancelled", "a cancelled order stays cancelled")]}
    )

    customer_email: Email = Field(
        description="The customer's e-mail address, for shipping notices. Fixed once the Fulfillment exists."
    )
    items: list[Item] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        description="What was ordered: at least one item, each SKU once. Fixed once the Fulfillment exists.",
        json_schema_extra={"x-kubernetes-validations": ITEMS_FIELD_RULES},
    )
    shipping_address: ShippingAddress = Field(
        description="Where to ship. A signal: a change is sent to the Fulfillment, which takes it until shipped."
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Where the Fulfillment is created and driven: the name of a target the order controller's "
        "operator declared (a namespace of this cluster, or of another cluster), which must allow this Order's "
        "namespace. Unset: this Order's own namespace. Fixed once the Fulfillment exists.",
    )
    paused: bool = Field(
        default=False, description="Pause (true) or resume (false) the fulfillment. A signal: may change at any time."
    )
    cancelled: bool = Field(
        default=False, description="Cancel the order and its fulfillment. A signal: one-way; too late once shipped."
    )
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.CANCEL,
        description="What deleting the Order does to its Fulfillment: Cancel (default; it then "
        "finishes its own lifecycle), Orphan (left alone) or Delete.",
    )
    step_duration_seconds: StepDurations | None = Field(
        default=None,
        description="Passed to the Fulfillment when it is created; for demos and tests. "
        "Fixed once the Fulfillment exists.",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=DEADLINE_MAX,
        description=active_deadline_description("the order")
        + " The customer's promise: when it passes before the Fulfillment has shipped, the Fulfillment is "
        "cancelled; a Fulfillment that ships before the cancel reaches it wins (Completed).",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=TTL_MAX,
        description=TTL_DESCRIPTION
        + " When the Order goes, its deletionPolicy applies: with Cancel, its Fulfillment gets the same "
        "time to live, counted from its own end; a Fulfillment is never removed while its Order lives.",
    )


class FulfillmentState(Model):
    """The Fulfillment as last read from its status (the query), mirrored here."""

    name: str = Field(description="The Fulfillment's name.")
    namespace: str | None = Field(default=None, description="Its namespace; unset: the Order's.")
    target: str | None = Field(default=None, description="The target it lives in; unset: the Order's namespace.")
    uid: str | None = Field(default=None, description="Its metadata.uid.")
    phase: str | None = Field(default=None, description="Its status.phase.")
    percent: int | None = Field(default=None, ge=0, le=100, description="Its progress, in percent.")
    current_step: str | None = Field(default=None, description="Its current step.")
    paused: bool | None = Field(default=None, description="Whether it is paused now.")
    tracking_number: str | None = Field(default=None, description="Its tracking number, once shipped.")
    generation: int | None = Field(default=None, description="Its metadata.generation.")
    observed_generation: int | None = Field(
        default=None, description="Its status.observedGeneration: the generation it has acknowledged."
    )
    message: str | None = Field(default=None, description="Its latest notable condition message.")


class SentSignals(Model):
    """The desired values the order controller last wrote to the Fulfillment's spec."""

    paused: bool = Field(default=False, description="spec.paused as last sent.")
    cancelled: bool = Field(default=False, description="spec.cancelled as last sent.")
    shipping_address: ShippingAddress | None = Field(default=None, description="spec.shippingAddress as last sent.")
    generation: int | None = Field(default=None, description="The Fulfillment generation the last signal produced.")
    sent_at: datetime.datetime | None = Field(default=None, description="When the last signal was sent.")


class OrderStatus(Model):
    """Actual state, written only by the order controller."""

    phase: OrderPhase = Field(default=OrderPhase.PENDING, description="Where the order is.")
    observed_generation: int | None = Field(default=None, description="The metadata.generation last acted on.")
    fulfillment: FulfillmentState | None = Field(default=None, description="The Fulfillment, as it reports itself.")
    signals: SentSignals | None = Field(default=None, description="The signals last sent to the Fulfillment.")
    completed_at: datetime.datetime | None = Field(default=None, description="When the order reached a final phase.")
    due_at: datetime.datetime | None = Field(
        default=None,
        description="When the order is due: metadata.creationTimestamp plus spec.activeDeadlineSeconds. "
        "Unset: no deadline.",
    )
    deadline_exceeded_at: datetime.datetime | None = Field(
        default=None,
        description="When the controller found the order past its due time, unshipped, and cancelled its "
        "Fulfillment. Final: the order then ends Failed (DeadlineExceeded), or Completed if the parcel "
        "shipped before the cancel reached it.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (completed), Reconciling, Stalled, Paused and SignalsAcknowledged.",
        json_schema_extra=CONDITIONS_EXTRA,
    )
