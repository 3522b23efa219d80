"""Kubernetes-style conditions (metav1.Condition), as kstatus and ``kubectl wait`` read them.

Pure: both cores set their conditions with these, so the two kinds read alike to kstatus, Argo CD
and ``kubectl wait``, and each warns of a condition the same way (once, when it is new).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from orderflow.api.common import CONDITION_MESSAGE_MAX, Condition, ConditionStatus

Cond = tuple[ConditionStatus, str, str]
"""One condition's status, reason and message."""

NO_ERROR: Cond = (ConditionStatus.FALSE, "NoError", "no error")
NOT_PAUSED: Cond = (ConditionStatus.FALSE, "NotPaused", "not paused")


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: datetime.datetime,
) -> None:
    """Set one condition in place; its lastTransitionTime moves only when its status changes.

    As Flux's conditions helper does: a message longer than the API allows (a long API error, say)
    is cut, not refused, and the list stays in one order (kstatus's three first, then by type), so
    the same state is always written the same way."""
    message = trim(message)
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
    conditions.sort(key=_order)


_FIRST = ("Ready", "Reconciling", "Stalled")
CUT = " … (cut)"


def _order(condition: Condition) -> tuple[int, str]:
    return (_FIRST.index(condition.type) if condition.type in _FIRST else len(_FIRST), condition.type)


def trim(message: str, most: int = CONDITION_MESSAGE_MAX) -> str:
    """``message`` within ``most`` characters: its start, and a mark that the rest was cut."""
    return message if len(message) <= most else message[: most - len(CUT)] + CUT


def get_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_kstatus(
    conditions: list[Condition],
    generation: int,
    now: datetime.datetime,
    ready: Cond,
    reconciling: Cond | None = None,
    stalled: Cond | None = None,
) -> None:
    """kstatus's three, in this order: Ready (the spec is done), Reconciling (working on it) and
    Stalled (it cannot get there without a change). Unless given, Reconciling is False for Ready's
    reason and Stalled is False (``NO_ERROR``): kstatus reads a missing one as unknown, not False."""
    set_condition(conditions, "Ready", *ready, generation, now)
    set_condition(
        conditions, "Reconciling", *(reconciling or (ConditionStatus.FALSE, ready[1], ready[2])), generation, now
    )
    set_condition(conditions, "Stalled", *(stalled or NO_ERROR), generation, now)


def set_stalled(
    conditions: list[Condition], generation: int, now: datetime.datetime, reason: str, message: str
) -> None:
    """Stalled for ``reason``: neither Ready nor Reconciling, until something changes."""
    set_kstatus(
        conditions,
        generation,
        now,
        ready=(ConditionStatus.FALSE, reason, message),
        stalled=(ConditionStatus.TRUE, reason, message),
    )


def newly(
    before: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str | None = None,
    message: str | None = None,
) -> bool:
    """Whether condition ``type_`` says something new: it did not already have ``status`` (with
    ``reason``, and ``message`` among its messages, where given) in ``before``, the status the
    decision started from. A Warning Event goes out when a condition first says so, not on every
    reconcile that still sees it: the condition is what stays, the Event what was noticed."""
    previous = get_condition(before, type_)
    if previous is None or previous.status != status:
        return True
    if reason is not None and previous.reason != reason:
        return True
    return message is not None and message not in previous.message


def describe_error(error: Exception, most: int = 5) -> str:
    """One clause per problem, naming the field, from a pydantic ValidationError (or any error),
    for a condition message a person can act on."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        return "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in errors()[:most])
    return str(error)
