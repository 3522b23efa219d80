"""When a timed step fell due, from a Fulfillment's status history, and how late it ended.

Pure: no I/O, so the waiting benchmark's arithmetic is tested on its own. A step falls due its
duration after the history entry that entered it (``Started`` enters Picking; ``Picked`` enters
Packing at the moment Picking fell due, so the next step's clock starts on time even when the
transition was written late). The history's own entry for a step's end carries that due time,
not the moment of the write, so the actual end is taken from elsewhere: when a watch saw the
next phase.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

TIMED = {"Picking": "picking", "Packing": "packing"}
"""The timed phases, and each one's key in ``spec.stepDurationSeconds``."""
NEXT = {"Picking": "Packing", "Packing": "Shipped"}
INTERRUPTING = {"Paused", "Resumed"}
"""A pause moves a step's due time by the time paused; such steps are not timed here."""


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def due_times(history: Sequence[Mapping[str, Any]], durations: Mapping[str, float]) -> dict[str, datetime.datetime]:
    """Each timed phase entered in ``history`` (oldest first) and when it fell (or falls) due.
    A step paused or resumed is left out: its due time is not its entry plus its duration."""
    due: dict[str, datetime.datetime] = {}
    current: str | None = None
    for entry in history:
        if entry["reason"] in INTERRUPTING:
            if current is not None:
                due.pop(current, None)
            current = None
            continue
        phase = entry["phase"]
        if phase == current:
            continue
        current = phase if phase in TIMED else None
        if current is not None:
            due[current] = parse_time(entry["time"]) + datetime.timedelta(seconds=durations[TIMED[current]])
    return due


def step_lateness(
    history: Sequence[Mapping[str, Any]],
    durations: Mapping[str, float],
    ended: Mapping[str, datetime.datetime],
    since: datetime.datetime | None = None,
) -> dict[str, float]:
    """Seconds from each step's due time to its end, for the steps in ``ended`` (phase -> when
    the next phase was seen). ``since``: a step that fell due before it (while the controllers
    were down) is counted from it instead, from when they served again; one that ended before it,
    as 0."""
    due = due_times(history, durations)
    late: dict[str, float] = {}
    for phase, at in ended.items():
        if phase not in due:
            continue
        if since is None:
            late[phase] = (at - due[phase]).total_seconds()
        else:
            late[phase] = max(0.0, (at - max(due[phase], since)).total_seconds())
    return late
