"""The two objects as read, and what each is now: its :class:`~orderflow.describe.shape.Summary`.

Each is read leniently: a status this version cannot read is shown empty, with a note, so that
``describe`` still tells what it can. No I/O.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from orderflow.api.common import HISTORY_LIMIT, Condition, ConditionStatus, ShippingAddress
from orderflow.api.fulfillment import FulfillmentStatus
from orderflow.api.order import OrderStatus
from orderflow.describe.shape import FULFILLMENT, ORDER, ConditionView, Signals, Snapshot, Step, Summary
from orderflow.runtime.pure.reading import lenient

M = TypeVar("M", bound=BaseModel)


@dataclasses.dataclass(frozen=True)
class Meta:
    name: str
    uid: str
    created: datetime.datetime | None
    deleting: datetime.datetime | None
    generation: int | None
    namespace: str | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Meta:
        meta = body.get("metadata") or {}
        generation = meta.get("generation")
        return cls(
            namespace=meta.get("namespace"),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            created=parse_time(meta.get("creationTimestamp")),
            deleting=parse_time(meta.get("deletionTimestamp")),
            generation=int(generation) if generation is not None else None,
        )


def _parse(model: type[M], raw: Any, what: str, notes: list[str]) -> M:
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        notes.append(f"{what} could not be read by this version of orderflow ({exc.error_count()} errors); shown empty")
        return model()


def shipping_address(raw: Any) -> ShippingAddress | None:
    return lenient(ShippingAddress, raw, None) if raw else None


def one_line(address: ShippingAddress) -> str:
    parts = [address.name, address.street, address.line2, f"{address.postal_code} {address.city}", address.region]
    return ", ".join([p for p in parts if p] + [address.country])


class _Named:
    """What both objects answer to: their name and uid, from their metadata."""

    meta: Meta

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def uid(self) -> str:
        return self.meta.uid


@dataclasses.dataclass(frozen=True)
class OrderObject(_Named):
    """An Order as read: its metadata, its spec as it came, its status parsed."""

    meta: Meta
    spec: Mapping[str, Any]
    status: OrderStatus

    @classmethod
    def read(cls, body: Mapping[str, Any], notes: list[str]) -> OrderObject:
        meta = Meta.of(body)
        status = _parse(OrderStatus, body.get("status"), f"Order {meta.name}'s status", notes)
        return cls(meta, body.get("spec") or {}, status)

    def signals(self, fulfillment: FulfillmentObject | None) -> Signals | None:
        sent = self.status.signals
        if sent is None:
            return None
        mirrored = self.status.fulfillment
        if fulfillment is not None:
            acked_generation = fulfillment.status.observed_generation
        else:
            acked_generation = mirrored.observed_generation if mirrored else None
        acked: bool | None = None
        acked_at: datetime.datetime | None = None
        if sent.generation is not None and acked_generation is not None:
            acked = acked_generation >= sent.generation
        elif sent.generation is not None or sent.sent_at is not None:
            acked = False
        if acked:
            acked_at = self._acknowledged_at(sent.sent_at, fulfillment)
        return Signals(
            paused=sent.paused,
            cancelled=sent.cancelled,
            generation=sent.generation,
            sent_at=sent.sent_at,
            acknowledged_generation=acked_generation,
            acknowledged=acked,
            acknowledged_at=acked_at,
        )

    def _acknowledged_at(
        self, sent_at: datetime.datetime | None, fulfillment: FulfillmentObject | None
    ) -> datetime.datetime | None:
        """When the order controller saw the acknowledgement (SignalsAcknowledged turned True after
        the signal), else the Fulfillment's first transition after it."""
        condition = find_condition(self.status.conditions, "SignalsAcknowledged")
        if (
            condition is not None
            and condition.status is ConditionStatus.TRUE
            and (sent_at is None or condition.last_transition_time >= sent_at)
        ):
            return condition.last_transition_time
        if fulfillment is not None and sent_at is not None:
            after = [entry.time for entry in fulfillment.status.history if entry.time >= sent_at]
            return min(after) if after else None
        return None

    def summary(self, namespace: str, fulfillment: FulfillmentObject | None, events: int) -> Summary:
        s = self.status
        mirrored = s.fulfillment
        address = shipping_address(self.spec.get("shippingAddress"))
        return Summary(
            kind=ORDER,
            name=self.name,
            namespace=namespace,
            exists=True,
            uid=self.uid,
            created=self.meta.created,
            deleting=self.meta.deleting,
            generation=self.meta.generation,
            observed_generation=s.observed_generation,
            phase=s.phase.value,
            percent=mirrored.percent if mirrored else None,
            current_step=mirrored.current_step if mirrored else None,
            paused=mirrored.paused if mirrored else None,
            tracking_number=mirrored.tracking_number if mirrored else None,
            completed_at=s.completed_at,
            due_at=s.due_at,
            deadline_exceeded_at=s.deadline_exceeded_at,
            ready=_view(find_condition(s.conditions, "Ready")),
            stalled=_view(find_condition(s.conditions, "Stalled")),
            conditions=tuple(v for v in map(_view, s.conditions) if v is not None),
            signals=self.signals(fulfillment),
            target=(mirrored.target if mirrored and mirrored.target else None) or self.spec.get("target"),
            shipping_address=one_line(address) if address else None,
            events=events,
        )


@dataclasses.dataclass(frozen=True)
class FulfillmentObject(_Named):
    """A Fulfillment as read: its metadata, its spec as it came, its status parsed."""

    meta: Meta
    spec: Mapping[str, Any]
    status: FulfillmentStatus

    @property
    def order_ref(self) -> tuple[str, str] | None:
        ref = self.spec.get("orderRef")
        if not isinstance(ref, Mapping) or not ref.get("name"):
            return None
        return str(ref["name"]), str(ref.get("uid", ""))

    @classmethod
    def read(cls, body: Mapping[str, Any], notes: list[str]) -> FulfillmentObject:
        meta = Meta.of(body)
        status = _parse(FulfillmentStatus, body.get("status"), f"Fulfillment {meta.name}'s status", notes)
        return cls(meta, body.get("spec") or {}, status)

    def summary(self, namespace: str, now: datetime.datetime, events: int) -> Summary:
        s = self.status
        progress = s.progress
        step = None
        if s.step_started_at is not None and not s.phase.terminal:
            running = (now - s.step_resumed_at).total_seconds() if s.step_resumed_at else 0.0
            step = Step(s.phase.value, s.step_elapsed_seconds + max(0.0, running), s.paused)
        address = s.shipping_address or shipping_address(self.spec.get("shippingAddress"))
        ref = self.order_ref
        generation = self.meta.generation
        acknowledged = (
            None if generation is None or s.observed_generation is None else s.observed_generation >= generation
        )
        return Summary(
            kind=FULFILLMENT,
            name=self.name,
            namespace=namespace,
            exists=True,
            uid=self.uid,
            created=self.meta.created,
            deleting=self.meta.deleting,
            generation=generation,
            observed_generation=s.observed_generation,
            phase=s.phase.value if s.observed_generation is not None or s.history else None,
            percent=progress.percent if progress else None,
            current_step=progress.current_step if progress else None,
            completed_steps=progress.completed_steps if progress else None,
            total_steps=progress.total_steps if progress else None,
            paused=s.paused,
            tracking_number=s.tracking_number,
            completed_at=s.completed_at,
            due_at=s.due_at,
            failure_reason=s.failure_reason,
            ready=_view(find_condition(s.conditions, "Ready")),
            stalled=_view(find_condition(s.conditions, "Stalled")),
            conditions=tuple(v for v in map(_view, s.conditions) if v is not None),
            signals=Signals(
                paused=_spec_bool(self.spec, "paused"),
                cancelled=_spec_bool(self.spec, "cancelled"),
                generation=generation,
                sent_at=None,
                acknowledged_generation=s.observed_generation,
                acknowledged=acknowledged,
                acknowledged_at=None,
            ),
            step=step,
            order_ref=ref[0] if ref else None,
            shipping_address=one_line(address) if address else None,
            events=events,
            history_truncated=len(s.history) >= HISTORY_LIMIT,
        )


def _spec_bool(spec: Mapping[str, Any], field: str) -> bool:
    return bool(spec.get(field, False))


def find_condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def _view(condition: Condition | None) -> ConditionView | None:
    if condition is None:
        return None
    return ConditionView(
        condition.type, condition.status.value, condition.reason, condition.message, condition.last_transition_time
    )


def absent_fulfillment(
    snapshot: Snapshot, order: OrderObject | None, note: str | None, events: int, foreign: bool
) -> Summary:
    mirrored = order.status.fulfillment if order else None
    name = mirrored.name if mirrored else (order.name if order else snapshot.name)
    namespace = (mirrored.namespace if mirrored else None) or snapshot.namespace
    finished = order is not None and order.status.phase.terminal
    unread = snapshot.fulfillment_note is not None  # in a target this kubeconfig cannot read
    if mirrored is None or not (finished or unread) or foreign:
        return Summary(FULFILLMENT, name, namespace, exists=False, note=note, events=events)
    return Summary(  # gone after it finished, or not readable here: what the Order last saw of it
        FULFILLMENT,
        name,
        namespace,
        exists=False,
        note=note,
        uid=mirrored.uid,
        phase=mirrored.phase,
        percent=mirrored.percent,
        current_step=mirrored.current_step,
        tracking_number=mirrored.tracking_number,
        events=events,
    )


# -- reading the objects ------------------------------------------------------------------------


def parse_time(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
