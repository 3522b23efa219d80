"""Which Events get posted, and how: client-go's recorder, on a clock of our own."""

from __future__ import annotations

from orderflow.runtime.pure.events import Correlator, Create, Drop, Event, Increment

PAUSED = Event("Normal", "Paused", "paused during Picking")


def test_the_same_event_again_raises_the_count_of_the_one_posted() -> None:
    events = Correlator()
    assert events.decide("uid-1", PAUSED, 0.0) == Create()
    events.created("uid-1", PAUSED, "order-1.abc")
    assert events.decide("uid-1", PAUSED, 10.0) == Increment("order-1.abc", 2)
    assert events.decide("uid-1", PAUSED, 20.0) == Increment("order-1.abc", 3)
    assert events.decide("uid-2", PAUSED, 20.0) == Create()  # another object: its own Event
    assert events.decide("uid-1", Event("Normal", "Paused", "paused during Packing"), 20.0) == Create()


def test_after_the_window_or_once_it_is_gone_a_new_event_is_posted() -> None:
    events = Correlator(window=600)
    events.decide("uid-1", PAUSED, 0.0)
    events.created("uid-1", PAUSED, "order-1.abc")
    assert events.decide("uid-1", PAUSED, 601.0) == Create()
    events.created("uid-1", PAUSED, "order-1.def")
    assert events.decide("uid-1", PAUSED, 602.0) == Increment("order-1.def", 2)
    events.gone("uid-1", PAUSED)
    assert events.decide("uid-1", PAUSED, 603.0) == Create()


def test_an_object_gets_a_burst_then_one_event_per_refill() -> None:
    events = Correlator(burst=3, refill=300)
    noisy = [Event("Warning", "Flapping", f"message {i}") for i in range(5)]
    assert [events.decide("uid-1", e, 0.0) for e in noisy] == [Create(), Create(), Create(), Drop(), Drop()]
    assert events.decide("uid-2", noisy[0], 0.0) == Create()  # other objects are not held back
    assert events.decide("uid-1", noisy[3], 299.0) == Drop()
    assert events.decide("uid-1", noisy[3], 300.0) == Create()  # one token back after refill seconds
    assert events.decide("uid-1", noisy[4], 300.0) == Drop()


def test_memory_is_bounded() -> None:
    events = Correlator(size=10)
    for i in range(100):
        events.decide(f"uid-{i}", PAUSED, float(i))
    assert len(events._buckets) <= 10
    assert len(events._seen) <= 10
