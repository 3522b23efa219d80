"""describe(): both objects and their Events in, one timeline out: the rows in order of time, the
Events folded into them, which objects are each other's, and no personal data in a detail."""

from __future__ import annotations

import json

import pytest

from orderflow.api.order import OrderPhase, OrderStatus
from orderflow.describe import render, timeline
from orderflow.describe.shape import Snapshot
from orderflow.describe.timeline import describe

from .stories import (
    EMAIL,
    PERSONAL,
    T0,
    F,
    T,
    at,
    completed_order,
    cond,
    event,
    events,
    in_target,
    shipped_fulfillment,
    stamp,
    story,
    whats,
)

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


def test_a_pause_and_a_resume_in_the_same_second_each_keep_their_own_event() -> None:
    order = completed_order()
    order["status"]["signals"]["sentAt"] = at(1.9).isoformat()
    pause = event("Order", "order-uid", "SignalSent", "sent paused=true to Fulfillment o1", 1.2)
    resume = event("Order", "order-uid", "SignalSent", "sent paused=false to Fulfillment o1", 1.95)
    desc = story(order=order, events=(resume, pause))  # in no particular order
    left = [r for r in desc.timeline if r.kind == "event" and r.what == "SignalSent"]
    assert [r.detail for r in left] == ["sent paused=true to Fulfillment o1"]


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


def test_a_history_cut_to_its_last_entries_still_says_when_it_started() -> None:
    body = shipped_fulfillment()
    body["status"]["history"] = body["status"]["history"][3:]
    desc = story("fulfillment", fulfillment=body, order=None, events=())
    started = next(r for r in desc.timeline if r.what == "Started")
    assert started.time == at(0.5)
    assert "startedAt" in started.detail


def test_events_that_cannot_be_read_are_a_note() -> None:
    desc = story(events=(), events_note="Events not shown: not allowed to list Events in shop (403)")
    assert desc.notes == ("Events not shown: not allowed to list Events in shop (403)",)


def test_a_deletion_requested_is_a_row_of_each_object() -> None:
    order, fulfillment = completed_order(), shipped_fulfillment()
    order["spec"]["deletionPolicy"] = "Orphan"
    order["metadata"]["deletionTimestamp"] = stamp(30)
    fulfillment["metadata"]["deletionTimestamp"] = stamp(31)
    deleted = [r for r in story(order=order, fulfillment=fulfillment).timeline if r.kind == "deleted"]
    assert [(r.time, r.object, r.what, r.detail) for r in deleted] == [
        (at(30), "Order", "Deletion requested", "deletionPolicy Orphan"),
        (at(31), "Fulfillment", "Deletion requested", ""),
    ]


def test_a_missed_deadline_is_a_row_with_its_warning_folded_into_it() -> None:
    order = completed_order()  # shipped before the cancel reached it: Completed all the same
    order["status"]["dueAt"] = stamp(5)
    order["status"]["deadlineExceededAt"] = at(5.1).isoformat()
    due = "due at 2026-11-25T12:00:05Z"
    late = event("Order", "order-uid", "DeadlineExceeded", f"{due}; cancelling", 5.1, type_="Warning")
    desc = story(order=order, events=(*events(), late))
    missed = next(r for r in desc.timeline if r.what == "DeadlineExceeded")
    assert (missed.time, missed.object, missed.kind) == (at(5.1), "Order", "phase")
    assert missed.detail == f"{due} (spec.activeDeadlineSeconds), not shipped: cancelling the Fulfillment"
    assert "Order:DeadlineExceeded" not in whats(desc, "event")


def test_an_event_posted_again_says_how_many_times() -> None:
    again = event("Fulfillment", "ful-uid", "SlowStep", "picking is slow", 2, type_="Warning")
    again.update(count=3, lastTimestamp=stamp(4))
    desc = story(events=(*events(), again))
    slow = next(r for r in desc.timeline if r.what == "SlowStep")
    assert (slow.time, slow.kind) == (at(2), "event")
    assert slow.detail == "Warning: picking is slow (3 times, last at 2026-11-25T12:00:04Z)"


# -- personal data --------------------------------------------------------------------------------


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


# -- a target in another cluster ------------------------------------------------------------------


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
