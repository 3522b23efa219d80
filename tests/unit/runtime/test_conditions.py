"""Conditions as metav1.Condition has them: one per type, and a transition time that moves only
when the status does."""

from __future__ import annotations

import datetime

from pydantic import BaseModel, ValidationError

from orderflow.runtime.conditions import describe_error, get_condition, set_condition

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(seconds=5)


def test_a_condition_is_set_once_per_type_and_moves_its_time_only_on_a_status_change() -> None:
    conditions: list = []
    set_condition(conditions, "Ready", "False", "Picking", "picking", 1, T0)
    set_condition(conditions, "Ready", "False", "Packing", "packing", 2, T1)
    (ready,) = conditions
    assert (ready.reason, ready.observed_generation, ready.last_transition_time) == ("Packing", 2, T0)
    set_condition(conditions, "Ready", "True", "Shipped", "shipped", 2, T1)
    set_condition(conditions, "Stalled", "False", "Progressing", "", 2, T1)
    assert get_condition(conditions, "Ready").last_transition_time == T1  # type: ignore[union-attr]
    assert [c.type for c in conditions] == ["Ready", "Stalled"]
    assert get_condition(conditions, "Reconciling") is None


def test_a_validation_error_reads_as_one_clause_per_field() -> None:
    class Spec(BaseModel):
        quantity: int
        sku: str

    try:
        Spec.model_validate({"quantity": "many"})
    except ValidationError as exc:
        message = describe_error(exc)
    assert message.startswith("quantity: ")
    assert "; sku: Field required" in message
    assert describe_error(RuntimeError("plain")) == "plain"
