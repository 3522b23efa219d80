"""What each object is now, its summary: the step it is in, whether the last signal was acknowledged,
a Fulfillment known only from what the Order last saw, and a status this version cannot read."""

from __future__ import annotations

import pytest

from orderflow.describe import render

from .stories import TRACKING, completed_order, paused_fulfillment, shipped_fulfillment, stamp, story


def test_a_fulfillment_deleted_after_the_order_finished_is_shown_as_last_reported() -> None:
    desc = story("fulfillment", fulfillment=None)
    assert not desc.fulfillment.exists
    assert desc.fulfillment.phase == "Shipped"
    assert desc.fulfillment.tracking_number == TRACKING
    assert desc.fulfillment.note is not None
    assert "after the order finished" in desc.fulfillment.note


def test_an_unacknowledged_signal_and_a_paused_step() -> None:
    order = completed_order()
    order["status"]["signals"]["generation"] = 2
    order["status"]["signals"]["sentAt"] = stamp(1)
    desc = story(order=order, fulfillment=paused_fulfillment())
    assert desc.order.signals is not None
    assert desc.order.signals.acknowledged is False
    assert "acknowledged" not in {r.kind for r in desc.timeline}
    step = desc.fulfillment.step
    assert step is not None
    assert step.paused
    assert step.elapsed_seconds == pytest.approx(0.7)
    text = render.plain(desc)
    assert "NOT acknowledged yet (observedGeneration 1)" in text
    assert "Picking, 0.700s into the step (paused)" in text


def test_a_running_step_counts_time_up_to_now() -> None:
    body = paused_fulfillment()
    body["status"]["paused"] = False
    body["status"]["stepResumedAt"] = stamp(50)
    desc = story("fulfillment", fulfillment=body)  # now is 60 s
    assert desc.fulfillment.step is not None
    assert desc.fulfillment.step.elapsed_seconds == pytest.approx(10.7)


def test_a_status_this_version_cannot_read_is_reported_not_fatal() -> None:
    body = shipped_fulfillment()
    body["status"]["phase"] = "Teleporting"
    desc = story(fulfillment=body)
    assert any("could not be read" in note for note in desc.notes)
    assert "could not be read" in render.plain(desc)
