"""orderflow describe: objects in, one timeline out (pure), and how it is shown."""

from __future__ import annotations

import datetime
import io
import json
import queue
import re
import threading
from typing import Any

import pytest
import requests

from orderflow.api.common import Condition, ConditionStatus, HistoryEntry, ShippingAddress
from orderflow.api.fulfillment import FulfillmentPhase, FulfillmentProgress, FulfillmentStatus
from orderflow.api.order import FulfillmentState, OrderPhase, OrderStatus, SentSignals
from orderflow.cli import kubectl_plugin
from orderflow.describe import command, render, source, timeline
from orderflow.describe.shape import Description, Snapshot
from orderflow.describe.timeline import describe
from orderflow.runtime.errors import Forbidden

T0 = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)
ADDRESS = ShippingAddress(name="Ada Lovelace", street="12 Square", city="London", postal_code="SW1Y 4JH", country="GB")
EMAIL = "ada@example.com"
TRACKING = "OF0123456789AB"
T, F = ConditionStatus.TRUE, ConditionStatus.FALSE


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    """A metadata or Event time as the API server keeps it: whole seconds."""
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(type_: str, status: ConditionStatus, reason: str, message: str, seconds: float) -> Condition:
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=3,
        last_transition_time=at(seconds),
    )


def meta(name: str, uid: str, created: float, generation: int = 3, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "shop",
        "uid": uid,
        "generation": generation,
        "creationTimestamp": stamp(created),
        **more,
    }


def spec(**more: Any) -> dict[str, Any]:
    return {
        "customerEmail": EMAIL,
        "items": [{"sku": "BOOK-1", "quantity": 1}, {"sku": "PEN-1", "quantity": 2}],
        "shippingAddress": ADDRESS.wire(),
        **more,
    }


def completed_order() -> dict[str, Any]:
    """An Order paused at 1.1 s, resumed at 3.3 s, completed at 5.6 s."""
    status = OrderStatus(
        phase=OrderPhase.COMPLETED,
        observed_generation=3,
        completed_at=at(5.6),
        fulfillment=FulfillmentState(
            name="o1",
            uid="ful-uid",
            phase="Shipped",
            percent=100,
            current_step="Shipped",
            paused=False,
            tracking_number=TRACKING,
            generation=3,
            observed_generation=3,
        ),
        signals=SentSignals(paused=False, cancelled=False, shipping_address=ADDRESS, generation=3, sent_at=at(3.3)),
        conditions=[
            cond("Ready", T, "Completed", f"shipped; tracking number {TRACKING}", 5.6),
            cond("Reconciling", F, "Completed", "the order is complete", 5.6),
            cond("Stalled", F, "NoError", "no error", 0.2),
            cond("Paused", F, "NotPaused", "not paused", 3.5),
            cond("SignalsAcknowledged", T, "Acknowledged", "the fulfillment acknowledged generation 3", 3.5),
            cond("SignalsAccepted", T, "Accepted", "the fulfillment took every signal", 0.6),
        ],
    )
    return {
        "apiVersion": "orderflow.dev/v1alpha1",
        "kind": "Order",
        "metadata": meta("o1", "order-uid", 0),
        "spec": spec(paused=False),
        "status": status.wire(),
    }


def shipped_fulfillment(order_uid: str | None = "order-uid") -> dict[str, Any]:
    status = FulfillmentStatus(
        phase=FulfillmentPhase.SHIPPED,
        progress=FulfillmentProgress(current_step="Shipped", completed_steps=3, total_steps=3, percent=100),
        observed_generation=3,
        started_at=at(0.5),
        completed_at=at(5.5),
        tracking_number=TRACKING,
        shipping_address=ADDRESS,
        history=[
            HistoryEntry(time=at(0.5), phase="Picking", reason="Started", message="started; picking items"),
            HistoryEntry(time=at(1.2), phase="Picking", reason="Paused", message="paused during Picking"),
            HistoryEntry(time=at(3.4), phase="Picking", reason="Resumed", message="resumed Picking"),
            HistoryEntry(time=at(5.0), phase="Packing", reason="Picked", message="items picked; packing"),
            HistoryEntry(
                time=at(5.5),
                phase="Shipped",
                reason="Shipped",
                message="shipped to Ada Lovelace, 12 Square, SW1Y 4JH London, GB",
            ),
        ],
        conditions=[
            cond("Ready", T, "Shipped", f"shipped; tracking number {TRACKING}", 5.5),
            cond("Reconciling", F, "Finished", "the fulfillment is Shipped", 5.5),
            cond("Stalled", F, "NoError", "no error", 0.5),
            cond("Paused", F, "NotPaused", "not paused", 3.4),
            cond("Accepted", T, "SignalsApplied", "every signal in spec has been applied", 0.5),
        ],
    )
    extra = {"orderRef": {"name": "o1", "uid": order_uid}} if order_uid else {}
    return {
        "apiVersion": "orderflow.dev/v1alpha1",
        "kind": "Fulfillment",
        "metadata": meta("o1", "ful-uid", 0.4),
        "spec": spec(started=True, paused=False, **extra),
        "status": status.wire(),
    }


def event(kind: str, uid: str, reason: str, message: str, seconds: float, type_: str = "Normal") -> dict[str, Any]:
    return {
        "metadata": {"name": f"o1.{reason.lower()}{seconds}", "namespace": "shop"},
        "involvedObject": {
            "apiVersion": "orderflow.dev/v1alpha1",
            "kind": kind,
            "name": "o1",
            "namespace": "shop",
            "uid": uid,
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "firstTimestamp": stamp(seconds),
        "lastTimestamp": stamp(seconds),
        "count": 1,
    }


def events() -> tuple[dict[str, Any], ...]:
    return (
        event("Order", "order-uid", "FulfillmentCreated", "created and started Fulfillment o1", 0.1),
        event("Fulfillment", "ful-uid", "Started", "started; picking items", 0.6),
        event("Order", "order-uid", "SignalSent", "sent paused=true to Fulfillment o1", 1.1),
        event("Fulfillment", "ful-uid", "Paused", "paused during Picking", 1.3),
        event("Order", "order-uid", "SignalSent", "sent paused=false to Fulfillment o1", 3.3),
        event("Fulfillment", "ful-uid", "Resumed", "resumed Picking", 3.5),
        event("Fulfillment", "ful-uid", "Picked", "items picked; packing", 5.0),
        event("Fulfillment", "ful-uid", "Shipped", "shipped to Ada Lovelace, 12 Square, SW1Y 4JH London, GB", 5.6),
        event("Order", "order-uid", "Completed", f"order completed: tracking number {TRACKING}", 5.7),
        # An earlier Fulfillment of the same name: not this story.
        event("Fulfillment", "old-uid", "Started", "started; picking items", -3600),
    )


def story(subject: str = "order", **overrides: Any) -> Description:
    parts: dict[str, Any] = {
        "subject": subject,
        "name": "o1",
        "namespace": "shop",
        "order": completed_order(),
        "fulfillment": shipped_fulfillment(),
        "events": events(),
    }
    parts.update(overrides)
    return describe(Snapshot(**parts), at(60))


def whats(desc: Description, kind: str | None = None) -> list[str]:
    return [f"{r.object}:{r.what}" for r in desc.timeline if kind is None or r.kind == kind]


# -- the timeline -------------------------------------------------------------------------------


def test_one_timeline_of_both_objects_in_order_of_time() -> None:
    desc = story()
    assert whats(desc) == [
        "Order:Created",
        "Fulfillment:Created",  # at the same second: created rows first
        "Order:FulfillmentCreated",
        "Fulfillment:Started",
        "Order:SignalSent",  # the pause; its Event is all that is left of it
        "Fulfillment:Paused",
        "Order:Signal sent",  # the last signal, as status.signals records it
        "Fulfillment:Resumed",
        "Fulfillment:Signal acknowledged",
        "Fulfillment:Picked",
        "Fulfillment:Shipped",
        "Fulfillment:Ready=True",
        "Fulfillment:Reconciling=False",
        "Order:Completed",
        "Order:Ready=True",
        "Order:Reconciling=False",
    ]
    times = [r.time for r in desc.timeline]
    assert times == sorted(times)
    assert desc.timeline[0].since_start == 0
    assert desc.timeline[-1].since_start == pytest.approx(5.6)


def test_durations_are_the_time_each_step_took() -> None:
    rows = {r.what: r for r in story().timeline if r.kind in ("history", "acknowledged", "phase")}
    assert rows["Started"].duration == pytest.approx(0.5)  # since the Fulfillment's creation (12:00:00)
    assert rows["Paused"].duration == pytest.approx(0.7)
    assert rows["Resumed"].duration == pytest.approx(2.2)  # the time it stood paused
    assert rows["Picked"].duration == pytest.approx(1.6)
    assert rows["Shipped"].duration == pytest.approx(0.5)
    assert rows["Signal acknowledged"].duration == pytest.approx(0.2)  # from sent to acknowledged
    assert rows["Completed"].duration == pytest.approx(5.6)  # the order, from creation to the end


def test_events_that_repeat_a_row_are_folded_into_it_and_others_of_the_same_name_left_out() -> None:
    desc = story()
    assert whats(desc, "event") == ["Order:FulfillmentCreated", "Order:SignalSent"]
    assert desc.order.events == 4
    assert desc.fulfillment.events == 5  # the earlier Fulfillment's Event is not counted
    assert all(r.time.year == 2026 and r.time >= T0 for r in desc.timeline)


def test_the_signal_rows_say_what_was_sent_and_when_it_was_acknowledged() -> None:
    desc = story()
    sent = next(r for r in desc.timeline if r.kind == "signal")
    acked = next(r for r in desc.timeline if r.kind == "acknowledged")
    assert sent.time == at(3.3)
    assert "paused=false" in sent.detail
    assert "generation 3" in sent.detail
    assert acked.time == at(3.5)
    assert desc.order.signals is not None
    assert desc.order.signals.acknowledged is True


def test_quiet_conditions_are_left_out_and_changed_ones_kept() -> None:
    desc = story()
    conditions = whats(desc, "condition")
    assert "Order:Stalled=False" not in conditions  # never moved since the first status write
    assert "Order:SignalsAccepted=True" not in conditions
    assert "Fulfillment:Paused=False" not in conditions  # the Resumed entry tells it
    assert "Order:Ready=True" in conditions


def test_a_stalled_order_that_recovered_shows_when_it_recovered() -> None:
    order = completed_order()
    for c in order["status"]["conditions"]:
        if c["type"] == "Stalled":
            c["lastTransitionTime"] = stamp(2)
    assert "Order:Stalled=False" in whats(story(order=order), "condition")


# -- personal data --------------------------------------------------------------------------------


PERSONAL = ("Ada", "Lovelace", "12 Square", "SW1Y", "London", EMAIL)


def test_no_address_or_email_in_the_timeline_but_in_the_summary() -> None:
    leaked = event("Fulfillment", "ful-uid", "AddressChanged", "shipping address changed to Bob, 1 Rd, LS1 Leeds", 4)
    mail = event("Order", "order-uid", "Notice", f"mail to {EMAIL} and cc grace@example.org", 4.5)
    desc = story(events=(*events(), leaked, mail))
    text = json.dumps([r.wire() for r in desc.timeline])
    for word in (*PERSONAL, "Bob", "1 Rd", "grace@"):
        assert word not in text
    shipped = next(r for r in desc.timeline if r.what == "Shipped")
    assert shipped.detail == "shipped to [address] (phase Shipped)"
    changed = next(r for r in desc.timeline if r.what == "AddressChanged")
    assert changed.detail == "shipping address changed to [address]"
    assert leaked["message"] not in text
    assert "[email]" in next(r for r in desc.timeline if r.what == "Notice").detail
    # The object itself is shown to whoever can read it: its summary has the address.
    assert desc.order.shipping_address == "Ada Lovelace, 12 Square, SW1Y 4JH London, GB"


def test_the_plain_and_json_outputs_keep_the_address_to_the_header() -> None:
    desc = story()
    text = render.plain(desc)
    timeline = text.split("Timeline:", 1)[1]
    assert "Ada Lovelace" in text.split("Timeline:", 1)[0]
    for word in PERSONAL:
        assert word not in timeline


# -- the objects not there ------------------------------------------------------------------------


def test_a_fulfillment_made_by_hand_has_no_order() -> None:
    f = shipped_fulfillment(order_uid=None)
    desc = story("fulfillment", order=None, fulfillment=f, events=events()[1:2])
    assert not desc.order.exists
    assert desc.order.note is not None
    assert "no spec.orderRef" in desc.order.note
    assert {r.object for r in desc.timeline} == {"Fulfillment"}
    assert desc.timeline[0].what == "Created"
    assert "by hand" in desc.timeline[0].detail
    assert desc.fulfillment.order_ref is None
    assert "made by hand" in render.plain(desc)


def test_a_fulfillment_whose_order_was_deleted_says_so() -> None:
    desc = story("fulfillment", order=None)
    assert not desc.order.exists
    assert desc.order.name == "o1"
    assert desc.order.note == "Order o1 no longer exists (it was deleted)"
    assert whats(desc, "history") == [
        "Fulfillment:Started",
        "Fulfillment:Paused",
        "Fulfillment:Resumed",
        "Fulfillment:Picked",
        "Fulfillment:Shipped",
    ]


def test_an_order_of_the_same_name_that_is_another_object_is_not_the_fulfillments() -> None:
    other = completed_order()
    other["metadata"]["uid"] = "new-order-uid"
    desc = story("fulfillment", order=other)
    assert not desc.order.exists
    assert desc.order.note is not None
    assert "another object" in desc.order.note


def test_an_order_whose_fulfillment_does_not_exist_yet() -> None:
    order = completed_order()
    del order["status"]
    for subject in ("order", "fulfillment"):
        desc = story(subject, order=order, fulfillment=None, events=())
        assert desc.order.exists
        assert not desc.fulfillment.exists
        assert desc.fulfillment.note is not None
        assert "does not exist yet" in desc.fulfillment.note
        assert whats(desc) == ["Order:Created"]
        assert "does not exist yet" in render.plain(desc)


def test_an_order_whose_fulfillment_was_deleted_before_it_finished() -> None:
    order = completed_order()
    status = order["status"]
    status["phase"] = "Fulfilling"
    del status["completedAt"]
    missing = "Fulfillment o1 was deleted before it finished; this order cannot complete."
    status["conditions"] = [c for c in status["conditions"] if c["type"] not in ("Ready", "Stalled", "Reconciling")] + [
        cond("Ready", F, "FulfillmentMissing", missing, 4).wire(),
        cond("Stalled", T, "FulfillmentMissing", missing, 4).wire(),
    ]
    gone = event("Order", "order-uid", "FulfillmentMissing", missing, 4, type_="Warning")
    desc = story(order=order, fulfillment=None, events=(*events()[:6], gone))
    assert not desc.fulfillment.exists
    assert desc.fulfillment.note == "Fulfillment o1 was deleted before it finished: the order cannot complete"
    stalled = next(r for r in desc.timeline if r.what == "Stalled=True")
    assert stalled.detail.startswith("FulfillmentMissing: ")
    assert "Order:FulfillmentMissing" not in whats(desc, "event")  # folded into the condition
    # Its Events outlive it: the story up to its deletion is still told.
    assert "Fulfillment:Started" in whats(desc, "event")
    assert "Stalled" in render.plain(desc)


def test_a_fulfillment_deleted_after_the_order_finished_is_shown_as_last_reported() -> None:
    desc = story("fulfillment", fulfillment=None)
    assert not desc.fulfillment.exists
    assert desc.fulfillment.phase == "Shipped"
    assert desc.fulfillment.tracking_number == TRACKING
    assert desc.fulfillment.note is not None
    assert "after the order finished" in desc.fulfillment.note


def test_a_fulfillment_of_the_orders_name_that_is_not_the_orders_is_left_out() -> None:
    foreign = shipped_fulfillment(order_uid="someone-else")
    foreign["metadata"]["uid"] = "foreign-uid"
    theirs = event("Fulfillment", "foreign-uid", "Started", "started; picking items", 30)
    desc = story(fulfillment=foreign, events=(*events(), theirs))
    assert not desc.fulfillment.exists
    assert desc.fulfillment.note is not None
    assert "belongs to another order" in desc.fulfillment.note
    assert not whats(desc, "history")
    assert all(r.time < at(30) for r in desc.timeline)
    # The Order's own Fulfillment (gone) still tells its story through its Events.
    assert "Fulfillment:Picked" in whats(desc, "event")


# -- in progress ----------------------------------------------------------------------------------


def paused_fulfillment() -> dict[str, Any]:
    body = shipped_fulfillment()
    status = FulfillmentStatus.model_validate(body["status"])
    status.phase = FulfillmentPhase.PICKING
    status.paused = True
    status.history = status.history[:2]
    status.progress = FulfillmentProgress(current_step="Picking", completed_steps=0, total_steps=3, percent=0)
    status.step_started_at, status.step_elapsed_seconds, status.step_resumed_at = at(0.5), 0.7, None
    status.completed_at = status.tracking_number = None
    status.observed_generation = 1
    body["status"] = status.wire()
    body["metadata"]["generation"] = 2
    return body


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


def test_a_history_cut_to_its_last_entries_still_says_when_it_started() -> None:
    body = shipped_fulfillment()
    body["status"]["history"] = body["status"]["history"][3:]
    desc = story("fulfillment", fulfillment=body, order=None, events=())
    started = next(r for r in desc.timeline if r.what == "Started")
    assert started.time == at(0.5)
    assert "startedAt" in started.detail


def test_a_status_this_version_cannot_read_is_reported_not_fatal() -> None:
    body = shipped_fulfillment()
    body["status"]["phase"] = "Teleporting"
    desc = story(fulfillment=body)
    assert any("could not be read" in note for note in desc.notes)
    assert "could not be read" in render.plain(desc)


def test_events_that_cannot_be_read_are_a_note() -> None:
    desc = story(events=(), events_note="Events not shown: not allowed to list Events in shop (403)")
    assert desc.notes == ("Events not shown: not allowed to list Events in shop (403)",)


# -- output ---------------------------------------------------------------------------------------


def test_the_json_shape() -> None:
    document = json.loads(render.to_json(story()))
    assert set(document) == {"order", "fulfillment", "timeline"}
    row_keys = {"time", "object", "kind", "what", "detail", "sinceStartSeconds", "durationSeconds"}
    assert all(set(row) == row_keys for row in document["timeline"])
    assert document["timeline"][0]["time"] == "2026-11-25T12:00:00Z"
    order, fulfillment = document["order"], document["fulfillment"]
    assert order["phase"] == "Completed"
    assert order["exists"] is True
    assert order["ready"]["status"] == "True"
    assert order["signals"]["acknowledged"] is True
    assert fulfillment["progress"] == {"percent": 100, "currentStep": "Shipped", "completedSteps": 3, "totalSteps": 3}
    assert fulfillment["trackingNumber"] == TRACKING
    assert set(order) == set(fulfillment)  # one shape for both


def test_the_plain_text_layout() -> None:
    text = render.plain(story())
    lines = text.splitlines()
    assert lines[0].startswith("Order shop/o1  created 2026-11-25 12:00:00 UTC")
    assert "  Phase     Completed, finished 5.600s after creation" in lines
    assert any(line.startswith("Fulfillment shop/o1  for Order o1") for line in lines)
    assert f"  Tracking  {TRACKING}" in lines
    header = next(line for line in lines if line.startswith("TIME (UTC)"))
    assert header.split() == ["TIME", "(UTC)", "SINCE", "OBJECT", "WHAT", "TOOK", "DETAIL"]
    picked = next(line for line in lines if " Picked " in line)
    assert picked.split()[:5] == ["12:00:05.000", "+5.000s", "Fulfillment", "Picked", "1.600s"]
    assert "\x1b[" not in text


def test_the_subject_comes_first() -> None:
    assert render.plain(story("fulfillment")).startswith("Fulfillment shop/o1")


def test_the_rich_layout() -> None:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, force_terminal=True, width=160).print(render.rich(story()))
    text = out.getvalue()
    assert "\x1b[" in text  # styled
    assert "Completed" in text
    assert "Signal acknowledged" in text
    assert TRACKING in text
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=160).print(render.rich(story(), max_rows=3))
    assert "… 13 earlier" in out.getvalue()


def test_following_in_plain_text_appends_only_what_is_new() -> None:
    out = io.StringIO()
    view = command._Appending(out)
    before = story(fulfillment=paused_fulfillment())
    view.show(before)
    first = out.getvalue()
    view.show(story())
    added = out.getvalue()[len(first) :].splitlines()
    assert added[0].startswith("== Order o1: Completed")
    assert any(" Shipped " in line for line in added)
    assert not any(" Started " in line for line in added)  # shown already
    view.show(story())
    assert len(out.getvalue()[len(first) :].splitlines()) == len(added)  # nothing new, nothing printed


def test_following_as_json_prints_one_line_per_change() -> None:
    out = io.StringIO()
    view = command._JsonLines(out)
    view.show(story())
    view.show(story())
    view.show(story(fulfillment=paused_fulfillment()))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["fulfillment"]["phase"] == "Picking"


# -- arguments and the kubectl plugin ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("order/o1",), ("order", "o1")),
        (("orders/o1",), ("order", "o1")),
        (("ord", "o1"), ("order", "o1")),
        (("Fulfillment/o1",), ("fulfillment", "o1")),
        (("ful/o1",), ("fulfillment", "o1")),
        (("fulfillments.orderflow.dev/o1",), ("fulfillment", "o1")),
    ],
)
def test_targets(args: tuple[str, ...], expected: tuple[str, str]) -> None:
    assert command.parse_target(*args) == expected


@pytest.mark.parametrize("args", [("pod/x",), ("order",), ("order/",), ("order/a", "b")])
def test_bad_targets(args: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"."):
        command.parse_target(*args)


def test_the_kubectl_plugin_takes_orderflows_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert kubectl_plugin(["describe", "pod/x"]) == 2
    assert "give order/NAME or fulfillment/NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        kubectl_plugin(["describe", "--help"])
    assert capsys.readouterr().out.startswith("usage: kubectl orderflow describe")


def test_watch_stream_lines() -> None:
    assert source._watch_event({"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "7"}}}, "6") == (
        "7",
        True,
    )
    assert source._watch_event({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}, "7") == (
        "9",
        False,
    )
    assert source._watch_event({"type": "ERROR", "object": {"code": 410}}, "9") == (None, True)
    with pytest.raises(source.WatchError):
        source._watch_event({"type": "ERROR", "object": {"code": 500, "message": "boom"}}, "9")


def test_a_pause_and_a_resume_in_the_same_second_each_keep_their_own_event() -> None:
    order = completed_order()
    order["status"]["signals"]["sentAt"] = at(1.9).isoformat()
    pause = event("Order", "order-uid", "SignalSent", "sent paused=true to Fulfillment o1", 1.2)
    resume = event("Order", "order-uid", "SignalSent", "sent paused=false to Fulfillment o1", 1.95)
    desc = story(order=order, events=(resume, pause))  # in no particular order
    left = [r for r in desc.timeline if r.kind == "event" and r.what == "SignalSent"]
    assert [r.detail for r in left] == ["sent paused=true to Fulfillment o1"]


def test_an_invalid_order_shows_why_from_the_start() -> None:
    order = completed_order()
    message = "the order has 1600 units in all; at most 1000 fit one fulfillment, split it into several orders"
    order["status"] = OrderStatus(
        phase=OrderPhase.INVALID,
        observed_generation=1,
        conditions=[
            cond("Ready", F, "InvalidSpec", message, 0.2),
            cond("Reconciling", F, "InvalidSpec", message, 0.2),
            cond("Stalled", T, "InvalidSpec", message, 0.2),
            cond("Paused", F, "NotPaused", "not paused", 0.2),
        ],
    ).wire()
    warning = event("Order", "order-uid", "InvalidSpec", message, 0.2, type_="Warning")
    desc = story(order=order, fulfillment=None, events=(warning,))
    assert whats(desc) == ["Order:Created", "Order:Stalled=True"]  # the Warning folded into it
    assert desc.timeline[1].detail == f"InvalidSpec: {message}"
    assert desc.fulfillment.note == "not created: the Order is invalid (see its Stalled condition)"
    assert "  Stalled  True   InvalidSpec: the order has 1600 units" in render.plain(desc)


def test_following_does_not_repeat_a_condition_whose_message_changed_without_a_transition() -> None:
    out = io.StringIO()
    view = command._Appending(out)
    view.show(story())
    before = out.getvalue()
    order = completed_order()
    for c in order["status"]["conditions"]:
        if c["type"] == "Reconciling":
            c["message"] = "a newer message, no transition"
    view.show(story(order=order))
    assert out.getvalue() == before


# -- hostile text: whatever a person with the edit role (or status access) writes ----------------

ESC = "\x1b"
# Colours and clear-screen, a window title, an OSC 8 link, an OSC 52 clipboard write, a C1 CSI,
# DEL, a line separator, and a newline that forges a timeline row of its own.
HOSTILE = (
    f"{ESC}[31mred{ESC}[2J{ESC}]0;pwned\x07{ESC}]8;;https://evil.example/{ESC}\\click{ESC}]8;;{ESC}\\"
    f"{ESC}]52;c;ZXZpbA==\x07\x9b2J\x7f\u2028\r"
    "\n12:00:09.000  +9.000s  Order        Completed         order completed: tracking number OF1"
)
# Every character no value may bring to the screen: C0 (but the layout's own newline), DEL, C1,
# and the Unicode line and paragraph separators.
CONTROL = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\n"} | {"\u2028", "\u2029"}


def hostile_story() -> Description:
    fulfillment = shipped_fulfillment()
    fulfillment["spec"]["orderRef"]["name"] = f"o1{ESC}[8m"
    # Refused by today's schema, but an object stored before it may still carry one.
    fulfillment["spec"]["shippingAddress"] = {**ADDRESS.wire(), "name": f"Ada{ESC}]0;title\x07", "street": HOSTILE}
    fulfillment["status"]["failureMessage"] = HOSTILE
    for c in fulfillment["status"]["conditions"]:
        if c["type"] == "Stalled":
            c.update(status="True", reason="Failed", message=HOSTILE)
    bad = (
        event("Fulfillment", "ful-uid", f"Boom{ESC}[5m", HOSTILE, 7, type_="Warning"),
        event("Order", "order-uid", "Note", f"line one\nline two{ESC}[0m", 8),
    )
    return story("fulfillment", fulfillment=fulfillment, events=events() + bad)


def shown_controls(text: str) -> set[str]:
    return {c for c in text if c in CONTROL}


def test_plain_text_shows_control_characters_as_escapes_and_each_row_on_one_line() -> None:
    desc = hostile_story()
    text = render.plain(desc)
    assert shown_controls(text) == set()
    for shown in ("\\x1b[31mred", "\\x9b2J", "\\u2028", "\\n12:00:09.000"):
        assert shown in text
    lines = text.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("TIME (UTC)")) + 1 :]
    assert len(table) == len(desc.timeline)  # no forged rows
    assert shown_controls(render.status_line(desc)) == set()


def test_the_terminal_layout_writes_only_its_own_colours() -> None:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, force_terminal=True, width=400).print(render.rich(hostile_story()))
    text = out.getvalue()
    own_colours = re.compile(r"\x1b\[[0-9;]*m")
    assert shown_controls(own_colours.sub("", text)) == set()
    assert "\\x1b]52;c;" in text  # shown, not run


def test_following_shows_no_control_characters() -> None:
    out = io.StringIO()
    view = command._Appending(out)
    view.show(story("fulfillment"))
    view.show(hostile_story())
    assert shown_controls(out.getvalue()) == set()


def test_json_escapes_what_a_terminal_could_run() -> None:
    text = render.to_json(hostile_story())
    assert shown_controls(text) == set()
    assert json.loads(text)["fulfillment"]["stalled"]["message"] == HOSTILE  # the value itself, unchanged


# -- a target in another cluster ------------------------------------------------------------------


def in_target() -> tuple[dict[str, Any], dict[str, Any]]:
    """o1 of namespace shop, its Fulfillment shop.o1 in namespace warehouse of target eu."""
    order, fulfillment = completed_order(), shipped_fulfillment()
    order["spec"]["target"] = "eu"
    order["status"]["fulfillment"].update(name="shop.o1", namespace="warehouse", target="eu")
    fulfillment["metadata"].update(name="shop.o1", namespace="warehouse")
    fulfillment["spec"]["orderRef"].update(namespace="shop", cluster="shop-eu")
    return order, fulfillment


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("eu=kind-warehouse", ("eu", "kind-warehouse")),
        ("kind-warehouse", (None, "kind-warehouse")),
        ("arn:aws:eks:eu-west-1:1:cluster/wh=x", (None, "arn:aws:eks:eu-west-1:1:cluster/wh=x")),  # no target name
    ],
)
def test_target_context_values(value: str, expected: tuple[str | None, str]) -> None:
    assert source.parse_target_context(value) == expected


@pytest.mark.parametrize("value", ["", "eu="])
def test_bad_target_context_values(value: str) -> None:
    with pytest.raises(ValueError, match="CONTEXT"):
        source.parse_target_context(value)


def test_the_context_for_a_target_named_by_the_user_else_named_as_the_target() -> None:
    known = ("shop", "eu", "kind-warehouse")
    assert source.choose_context("eu", {"eu": "kind-warehouse"}, known) == ("kind-warehouse", True)
    assert source.choose_context("eu", {"us": "x", None: "kind-warehouse"}, known) == ("kind-warehouse", True)
    assert source.choose_context("eu", {}, known) == ("eu", False)
    assert source.choose_context("us", {}, known) == (None, False)


def test_why_a_context_cannot_read_it_is_one_line_in_the_servers_words() -> None:
    from orderflow.runtime.errors import ApiError

    with pytest.raises(requests.ConnectionError) as refused_info:  # port 1: nothing listens, refused at once
        requests.get("https://127.0.0.1:1/apis/orderflow.dev/v1alpha1/namespaces/w/fulfillments/o1", timeout=5)
    refused = refused_info.value
    server = "https://127.0.0.1:1"
    told = source.why_not("eu", refused, server)
    assert told == "context eu cannot reach the API server at https://127.0.0.1:1: [Errno 111] Connection refused"
    forbidden = Forbidden(403, "Forbidden", 'fulfillments.orderflow.dev "shop.o1" is forbidden')
    assert source.why_not("eu", forbidden, server).startswith("context eu is not allowed to read it at ")
    assert "401 Unauthorized" in source.why_not("eu", ApiError(401, "Unauthorized", "Unauthorized"), server)
    for exc in (refused, forbidden):
        assert "\n" not in source.why_not("eu", exc, server)


class FakeContexts(source.Contexts):
    """A kubeconfig with these contexts; reading through one fails as told, or finds ``found``."""

    def __init__(self, names: tuple[str, ...], chosen: dict[str | None, str], fails: Exception | None = None,
                 found: dict[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__(None, chosen)
        self.names, self.fails, self.found, self.asked = names, fails, found, []

    def choose(self, target: str) -> tuple[str | None, bool]:
        return source.choose_context(target, self.chosen, self.names)

    def reader(self, context: str) -> source.Reader:
        self.asked.append(context)
        reader = source.Reader(FakeApi())  # type: ignore[arg-type]
        reader.context = context
        fails, found = self.fails, self.found

        def find(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
            if fails is not None:
                raise fails
            return found

        reader.kube.find = find  # type: ignore[method-assign]
        return reader


class FakeApi:
    url = "https://warehouse.example:6443"


class LocalSource(source.Source):
    """The Order's cluster, holding ``here`` (None: nothing of that name)."""

    def __init__(self, contexts: source.Contexts, here: dict[str, Any] | None = None) -> None:
        super().__init__(FakeApi(), contexts)  # type: ignore[arg-type]
        self.here = here

    def _find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.here


def test_without_a_context_for_the_target_it_says_how_to_name_one() -> None:
    order, _ = in_target()
    found = LocalSource(FakeContexts(("shop",), {}))._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.body is None
    assert found.note is not None
    assert "no context of your kubeconfig is named eu" in found.note
    assert "--target-context eu=CONTEXT" in found.note
    desc = describe(Snapshot("order", "o1", "shop", order, None, fulfillment_note=found.note), at(60))
    assert desc.fulfillment.phase == "Shipped"  # as the Order last saw it
    assert desc.fulfillment.note == found.note


def test_a_context_named_as_the_target_is_read_when_the_fulfillment_is_not_in_this_cluster() -> None:
    order, fulfillment = in_target()
    contexts = FakeContexts(("shop", "eu"), {}, found=fulfillment)
    found = LocalSource(contexts)._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.body is fulfillment
    assert found.reader is not None
    assert found.reader.context == "eu"
    # In this cluster already (a target that is another namespace): no other context is tried.
    contexts = FakeContexts(("shop", "eu"), {}, found=None)
    assert LocalSource(contexts, here=fulfillment)._find_in_target(order, "warehouse", "shop.o1", "eu").body
    assert contexts.asked == []


def test_a_context_named_by_the_user_is_the_only_place_looked() -> None:
    order, fulfillment = in_target()
    stranger = shipped_fulfillment(order_uid=None)
    contexts = FakeContexts(("shop", "eu"), {"eu": "kind-warehouse"}, found=fulfillment)
    found = LocalSource(contexts, here=stranger)._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.body is fulfillment
    assert contexts.asked == ["kind-warehouse"]


CANNOT_REACH = "context kind-warehouse cannot reach the API server at https://warehouse.example:6443"


@pytest.mark.parametrize(
    ("fails", "said"),
    [
        (requests.ConnectionError("[Errno 111] Connection refused"), f"{CANNOT_REACH}: [Errno 111] Connection refused"),
        (requests.Timeout("read timed out"), f"{CANNOT_REACH}: no answer within 5 s"),
    ],
)
def test_a_context_that_cannot_read_it_is_named_with_the_reason_and_the_order_shown(
    fails: Exception, said: str
) -> None:
    order, _ = in_target()
    contexts = FakeContexts(("shop",), {None: "kind-warehouse"}, fails=fails)
    found = LocalSource(contexts)._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.body is None
    assert found.note == f"in target eu (namespace warehouse): {said}; shown as the Order last saw it"
    plain = render.plain(describe(Snapshot("order", "o1", "shop", order, None, fulfillment_note=found.note), at(60)))
    assert said in plain
    assert "Shipped" in plain


def test_a_context_missing_from_the_kubeconfig_is_said_so() -> None:
    order, _ = in_target()
    contexts = source.Contexts(None, {"eu": "nowhere"})
    found = LocalSource(contexts)._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.note == (
        "in target eu (namespace warehouse): context nowhere is not in the kubeconfig; shown as the Order last saw it"
    )


def test_a_fulfillment_read_through_a_context_says_which() -> None:
    order, fulfillment = in_target()
    desc = describe(Snapshot("order", "o1", "shop", order, fulfillment, events(), fulfillment_context="kind-warehouse"),
                    at(60))  # fmt: skip
    assert desc.fulfillment.exists
    assert desc.fulfillment.context == "kind-warehouse"
    assert desc.fulfillment.namespace == "warehouse"
    assert "Fulfillment:Picked" in whats(desc, "history")
    assert "  Context     kind-warehouse (target eu)" in render.plain(desc)
    assert json.loads(render.to_json(desc))["fulfillment"]["context"] == "kind-warehouse"


def test_a_fulfillment_that_names_the_order_but_is_not_the_one_it_recorded_is_not_its() -> None:
    order, fulfillment = in_target()
    fulfillment["metadata"]["uid"] = "forged-uid"  # orderRef copied from the real one: anyone can write a uid there
    assert not timeline.is_orders(order, fulfillment)
    assert timeline.is_orders(*in_target())
    desc = describe(Snapshot("order", "o1", "shop", order, fulfillment, fulfillment_context="eu"), at(60))
    assert not desc.fulfillment.exists
    assert desc.fulfillment.note is not None
    assert "is not the one it created" in desc.fulfillment.note
    assert "read through context eu" in desc.fulfillment.note
    assert not whats(desc, "history")


def test_what_the_other_cluster_says_is_shown_as_escapes() -> None:
    order, fulfillment = in_target()
    fulfillment["status"]["conditions"][0]["message"] = "shipped\x1b]52;c;cm0gLXJmIH4=\x07"
    fails = Forbidden(403, "Forbidden", "no\x1b[2J")
    contexts = FakeContexts(("eu",), {}, fails=fails)
    found = LocalSource(contexts)._find_in_target(order, "warehouse", "shop.o1", "eu")
    for snapshot in (
        Snapshot("order", "o1", "shop", order, fulfillment, fulfillment_context="eu\x1b[31m"),
        Snapshot("order", "o1", "shop", order, None, fulfillment_note=found.note),
    ):
        text = render.plain(describe(snapshot, at(60)))
        assert "\x1b" not in text
        assert "\\x1b" in text


def test_following_watches_the_fulfillment_where_it_was_read() -> None:
    order, fulfillment = in_target()
    watched: list[tuple[str, str, str | None]] = []

    class Recording(LocalSource):
        def _watch(self, stream: source.Stream, namespace: str, notices: Any, stop: Any) -> None:
            watched.append((stream.what, namespace, stream.reader.context if stream.reader else None))

    contexts = FakeContexts(("eu",), {}, found=fulfillment)
    src = Recording(contexts)
    found = src._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.reader is not None
    src.fulfillment_reader = found.reader
    snapshot = Snapshot("order", "o1", "shop", order, fulfillment, fulfillment_context="eu")
    started = src.follow(source.Target("order", "o1", "shop"), snapshot, queue.Queue(), threading.Event())
    for _ in range(500):  # the threads record and end at once
        if len(watched) == started:
            break
        threading.Event().wait(0.01)
    assert sorted(watched) == [
        ("Events of o1", "shop", None),
        ("Events of shop.o1", "warehouse", "eu"),
        ("Fulfillment shop.o1", "warehouse", "eu"),
        ("Order o1", "shop", None),
    ]
