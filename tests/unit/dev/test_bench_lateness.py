"""The waiting benchmark's lateness: due times read from a status history, ends timed against them."""

from __future__ import annotations

import datetime

from orderflow.dev.bench.lateness import due_times, step_lateness

T0 = datetime.datetime(2026, 12, 6, 10, 0, tzinfo=datetime.UTC)
DURATIONS = {"picking": 150, "packing": 300}


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def entry(seconds: float, phase: str, reason: str) -> dict[str, str]:
    return {"time": at(seconds).isoformat().replace("+00:00", "Z"), "phase": phase, "reason": reason}


def test_each_step_falls_due_its_duration_after_it_was_entered() -> None:
    history = [entry(0.25, "Picking", "Started"), entry(150.25, "Packing", "Picked")]
    assert due_times(history, DURATIONS) == {"Picking": at(150.25), "Packing": at(450.25)}


def test_lateness_is_the_seen_end_minus_the_due_time() -> None:
    history = [entry(0.25, "Picking", "Started"), entry(150.25, "Packing", "Picked")]
    late = step_lateness(history, DURATIONS, {"Picking": at(150.5)})
    assert late == {"Picking": 0.25}


def test_a_step_ended_early_is_negative_lateness_not_hidden() -> None:
    late = step_lateness([entry(0, "Picking", "Started")], DURATIONS, {"Picking": at(149)})
    assert late == {"Picking": -1.0}


def test_a_paused_step_is_not_timed() -> None:
    history = [entry(0, "Picking", "Started"), entry(10, "Picking", "Paused"), entry(20, "Picking", "Resumed")]
    assert step_lateness(history, DURATIONS, {"Picking": at(170)}) == {}


def test_a_step_due_while_the_controllers_were_down_counts_from_when_they_served_again() -> None:
    history = [entry(0, "Picking", "Started")]
    served = at(158)
    assert step_lateness(history, DURATIONS, {"Picking": at(158.5)}, since=served) == {"Picking": 0.5}
    # due after they served again: its own due time, as without a restart
    assert step_lateness(history, DURATIONS, {"Picking": at(151)}, since=at(140)) == {"Picking": 1.0}
    # handled during the catch-up, before they counted as serving: on time
    assert step_lateness(history, DURATIONS, {"Picking": at(155)}, since=served) == {"Picking": 0.0}
