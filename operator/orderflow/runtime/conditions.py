"""Kubernetes-style conditions (metav1.Condition), as kstatus and ``kubectl wait`` read them."""

from __future__ import annotations

import datetime

from orderflow.api.common import Condition, ConditionStatus


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: datetime.datetime,
) -> None:
    """Set one condition in place; its lastTransitionTime moves only when its status changes."""
    for i, existing in enumerate(conditions):
        if existing.type == type_:
            moved = existing.status != status
            conditions[i] = Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                observed_generation=generation,
                last_transition_time=now if moved else existing.last_transition_time,
            )
            return
    conditions.append(
        Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            observed_generation=generation,
            last_transition_time=now,
        )
    )


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def describe_error(error: Exception, most: int = 5) -> str:
    """One clause per problem, naming the field, from a pydantic ValidationError (or any error),
    for a condition message a person can act on."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        return "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in errors()[:most])
    return str(error)
