"""Conditions as metav1.Condition has them: one per type, and a transition time that moves only
when the status does."""

from __future__ import annotations

import datetime

from pydantic import BaseModel, ValidationError

from orderflow.api.common import Condition, ConditionStatus
from orderflow.runtime.pure.conditions import (
    describe_error,
    get_condition,
    newly,
    set_condition,
    set_kstatus,
    set_stalled,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(seconds=5)
T, F = ConditionStatus.TRUE, ConditionStatus.FALSE


def read(conditions: list[Condition]) -> list[tuple[str, str, str, str, int | None]]:
    return [(c.type, c.status.value, c.reason, c.message, c.observed_generation) for c in conditions]


def test_a_condition_is_set_once_per_type_and_moves_its_time_only_on_a_status_change() -> None:
    conditions: list[Condition] = []
    set_condition(conditions, "Ready", F, "Picking", "picking", 1, T0)
    set_condition(conditions, "Ready", F, "Packing", "packing", 2, T1)
    (ready,) = conditions
    assert (ready.reason, ready.observed_generation, ready.last_transition_time) == ("Packing", 2, T0)
    set_condition(conditions, "Ready", T, "Shipped", "shipped", 2, T1)
    set_condition(conditions, "Stalled", F, "Progressing", "", 2, T1)
    moved = get_condition(conditions, "Ready")
    assert moved is not None
    assert moved.last_transition_time == T1
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


def test_kstatus_reads_all_three_with_false_unless_told() -> None:
    conditions: list[Condition] = []
    set_kstatus(conditions, 3, T0, ready=(F, "Fulfilling", "picking"))
    assert read(conditions) == [
        ("Ready", "False", "Fulfilling", "picking", 3),
        ("Reconciling", "False", "Fulfilling", "picking", 3),
        ("Stalled", "False", "NoError", "no error", 3),
    ]
    set_kstatus(conditions, 4, T1, ready=(F, "Fulfilling", "packing"), reconciling=(T, "Progressing", "packing"))
    assert read(conditions)[1] == ("Reconciling", "True", "Progressing", "packing", 4)


def test_stalled_is_neither_ready_nor_reconciling_and_leaves_the_rest_alone() -> None:
    conditions: list[Condition] = []
    set_condition(conditions, "Paused", T, "PausedBySignal", "paused", 1, T0)
    set_stalled(conditions, 2, T1, "InvalidSpec", "spec cannot be used")
    assert read(conditions) == [  # kstatus's three first, whatever was set before them
        ("Ready", "False", "InvalidSpec", "spec cannot be used", 2),
        ("Reconciling", "False", "InvalidSpec", "spec cannot be used", 2),
        ("Stalled", "True", "InvalidSpec", "spec cannot be used", 2),
        ("Paused", "True", "PausedBySignal", "paused", 1),
    ]


def test_the_list_has_one_order_whatever_order_conditions_were_set_in() -> None:
    one: list[Condition] = []
    other: list[Condition] = []
    for type_ in ("Paused", "TargetReachable", "Ready", "Stalled", "Reconciling", "SignalsAcknowledged"):
        set_condition(one, type_, T, "Why", "", 1, T0)
    for type_ in ("Reconciling", "SignalsAcknowledged", "Stalled", "Ready", "TargetReachable", "Paused"):
        set_condition(other, type_, T, "Why", "", 1, T0)
    assert [c.type for c in one] == [c.type for c in other] == [
        "Ready", "Reconciling", "Stalled", "Paused", "SignalsAcknowledged", "TargetReachable",
    ]  # fmt: skip


def test_a_message_longer_than_the_api_allows_is_cut_not_refused() -> None:
    conditions: list[Condition] = []
    huge = "x" * 40_000  # a long API error, say
    set_condition(conditions, "Stalled", T, "CreateFailed", huge, 1, T0)
    (stalled,) = conditions
    assert len(stalled.message) == 32_768
    assert stalled.message.startswith("xxx")
    assert stalled.message.endswith("(cut)")
    set_condition(conditions, "Stalled", T, "CreateFailed", "short", 1, T0)
    assert conditions[0].message == "short"


def test_a_condition_is_new_until_it_already_says_the_same() -> None:
    before: list[Condition] = []
    assert newly(before, "Stalled", T, "InvalidSpec")
    set_condition(before, "Stalled", T, "InvalidSpec", "spec cannot be used", 1, T0)
    assert not newly(before, "Stalled", T, "InvalidSpec")
    assert newly(before, "Stalled", T, "FulfillmentMissing")  # another reason
    assert newly(before, "Stalled", F, "InvalidSpec")  # another status
    assert not newly(before, "Stalled", T)  # any reason
    # A condition that carries several refusals: each is known by its message.
    set_condition(before, "Accepted", F, "CancelRefused", "cannot cancel; cannot move", 1, T0)
    assert not newly(before, "Accepted", F, message="cannot move")
    assert newly(before, "Accepted", F, message="cannot pause")
