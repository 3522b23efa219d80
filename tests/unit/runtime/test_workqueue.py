"""The work queue's semantics: one run per key at a time, folded duplicates, earliest wake-up, bounded retries.

The tests marked ``looptime`` run on a fake loop clock: the clock moves only when nothing on the
loop is ready to run, straight to the next timer. So ``await asyncio.sleep(60)`` means "the loop
had nothing left to do for a minute", and a wake-up due at 5 s runs at 5 s exactly.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from orderflow.runtime.cache import ObjectKey, Store
from orderflow.runtime.retry import RetryLater, RetryPolicy
from orderflow.runtime.workqueue import WorkQueue, observe

R = TypeVar("R")


def run(coro: Callable[[], Awaitable[R]]) -> R:
    return asyncio.run(asyncio.wait_for(coro(), timeout=10))


def stopwatch() -> Callable[[], float]:
    """Seconds of loop time since it was made (on a looptime loop, exact)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    return lambda: loop.time() - start


def timed_queue() -> tuple[WorkQueue[str], list[float]]:
    """A started queue whose reconcile notes when, in loop time since now, each run began."""
    elapsed = stopwatch()
    seen: list[float] = []

    async def reconcile(key: str) -> None:
        seen.append(elapsed())

    queue: WorkQueue[str] = WorkQueue("t", reconcile)
    queue.start()
    return queue, seen


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.001)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_adds_while_running_fold_into_one_more_run_and_never_overlap() -> None:
    runs: list[str] = []
    active = 0
    most = 0
    release = asyncio.Event()

    async def reconcile(key: str) -> None:
        nonlocal active, most
        active += 1
        most = max(most, active)
        runs.append(key)
        if len(runs) == 1:
            await release.wait()
        active -= 1

    queue: WorkQueue[str] = WorkQueue("t", reconcile, workers=4)
    queue.start()
    queue.add("a")
    await asyncio.sleep(1)
    running = list(runs)
    for _ in range(5):
        queue.add("a")  # while "a" runs: fold into exactly one more run
    release.set()
    await asyncio.sleep(60)  # whatever the adds queued has run by now
    await queue.stop()
    assert running == ["a"]
    assert runs == ["a", "a"]
    assert most == 1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_only_the_earliest_wake_up_is_kept() -> None:
    queue, seen = timed_queue()
    queue.add_after("a", 5.0)
    queue.add_after("a", 0.05)
    queue.add_after("a", 3.0)
    await asyncio.sleep(10)
    await queue.stop()
    assert seen == [0.05]  # once, when the earliest fell due: nothing at 3 s or 5 s


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_wake_up_asked_later_for_a_later_moment_leaves_the_earlier_one() -> None:
    """Which wake-up is earlier is read on the clock they fire on: a delay of 2 s asked at 4 s
    is due at 6 s, after the one due at 5 s, though 2 s is the shorter delay."""
    queue, seen = timed_queue()
    queue.add_after("a", 5.0)
    await asyncio.sleep(4)
    queue.add_after("a", 2.0)
    await asyncio.sleep(4.9)
    queue.add_after("a", 0.1)  # at 8.9 s, nothing pending: due at 9 s
    await asyncio.sleep(10)
    await queue.stop()
    assert seen == [5.0, 9.0]


class _Event:
    """Stands for what a Kopf handler's context holds: the event's body, patch, logger."""


_HANDLING: contextvars.ContextVar[_Event] = contextvars.ContextVar("handling")


def test_a_wake_up_set_while_handling_an_event_does_not_keep_the_event_alive() -> None:
    """A restart lists every object and sets each one's wake-up from the watch handler; a timer
    that kept the handler's context held each event until its step ended, hours later (#22:
    20 KiB an object, the fulfillment controller at 276 MiB with 10,000 in flight)."""

    async def scenario() -> tuple[bool, bool]:
        queue: WorkQueue[str] = WorkQueue("t", _nothing)
        event = _Event()
        gone = weakref.ref(event)

        def handle(handled: _Event) -> None:
            _HANDLING.set(handled)
            queue.add_after("a", 3600)

        contextvars.copy_context().run(handle, event)
        del event
        gc.collect()
        scheduled = queue.scheduled("a")
        await queue.stop()
        return scheduled, gone() is None

    scheduled, freed = run(scenario)
    assert scheduled
    assert freed


async def _nothing(key: str) -> None:
    return None


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_failures_retry_with_backoff_and_then_stop() -> None:
    elapsed = stopwatch()
    tries: list[float] = []

    async def reconcile(key: str) -> None:
        tries.append(elapsed())
        raise RuntimeError("boom")

    policy = RetryPolicy(initial_interval=1, factor=2, max_interval=3, max_attempts=4)
    queue: WorkQueue[str] = WorkQueue("t", reconcile, retry=policy)
    queue.start()
    queue.add("a")
    await asyncio.sleep(3600)
    scheduled = queue.scheduled("a")
    await queue.stop()
    # The first try and three retries, 1 s, 2 s and 3 s (the most) apart; then it waits for a change.
    assert tries == [0, 1, 3, 6]
    assert not scheduled


class Recorded(WorkQueue[ObjectKey]):
    """A queue that records what a watch event did to it, and what the store held at that moment."""

    def __init__(self, store: Store[Any]) -> None:
        super().__init__("observe-test", self._never)
        self.store = store
        self.calls: list[tuple[str, ObjectKey, dict[str, Any] | None]] = []

    @staticmethod
    async def _never(key: ObjectKey) -> None:
        raise AssertionError("not started")

    def add(self, key: ObjectKey, *, low_priority: bool = False) -> None:
        self.calls.append(("add later" if low_priority else "add", key, self.store.get(key)))
        super().add(key, low_priority=low_priority)

    def forget(self, key: ObjectKey) -> None:
        self.calls.append(("forget", key, self.store.get(key)))
        super().forget(key)


def test_a_watch_event_stores_the_body_before_it_queues_the_key_and_a_deletion_forgets_it() -> None:
    store: Store[None] = Store()
    queue = Recorded(store)
    key = ObjectKey("ns", "w1")
    body = {"metadata": {"name": "w1", "namespace": "ns", "resourceVersion": "3"}}
    observe(store, queue, "ADDED", body)
    observe(store, queue, None, {"metadata": {**body["metadata"], "resourceVersion": "4"}})  # the initial listing
    observe(store, queue, "DELETED", body)
    # The reconcile the key wakes reads at least the version that woke it.
    assert [(what, k, stored and stored["metadata"]["resourceVersion"]) for what, k, stored in queue.calls] == [
        ("add", key, "3"),
        ("add later", key, "4"),  # listed, not changed: behind the changes
        ("forget", key, None),
    ]
    assert store.get(key) is None


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_listed_keys_wait_behind_changed_ones_and_a_change_makes_one_urgent() -> None:
    runs: list[str] = []

    async def reconcile(key: str) -> None:
        runs.append(key)

    queue: WorkQueue[str] = WorkQueue("t", reconcile, workers=1)
    for key in ("old-1", "old-2", "old-3"):
        queue.add(key, low_priority=True)  # an initial list after a restart
    queue.add("new")  # created meanwhile
    queue.add("old-3")  # changed meanwhile: urgent now, and run once
    queue.add("old-1", low_priority=True)  # listed twice: still one run
    queue.start()
    await asyncio.sleep(60)  # a stale entry would have run by now
    await queue.stop()
    assert runs == ["new", "old-3", "old-1", "old-2"]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_listed_key_added_while_it_runs_runs_once_more() -> None:
    runs: list[str] = []
    release = asyncio.Event()

    async def reconcile(key: str) -> None:
        runs.append(key)
        if len(runs) == 1:
            await release.wait()

    queue: WorkQueue[str] = WorkQueue("t", reconcile, workers=2)
    queue.start()
    queue.add("a", low_priority=True)
    await asyncio.sleep(1)
    running = list(runs)
    queue.add("a", low_priority=True)
    queue.add("a")
    release.set()
    await asyncio.sleep(60)
    await queue.stop()
    assert running == ["a"]
    assert runs == ["a", "a"]


def test_a_worker_lets_the_event_loop_run_between_reconciles_that_never_wait() -> None:
    async def scenario() -> tuple[int, int]:
        runs: list[str] = []

        async def reconcile(key: str) -> None:
            runs.append(key)  # decided from the cache alone: nothing to wait for

        queue: WorkQueue[str] = WorkQueue("t", reconcile, workers=1)
        for i in range(100):
            queue.add(f"listed-{i}", low_priority=True)
        queue.start()
        await asyncio.sleep(0)  # the worker's first turn, then ours
        seen = len(runs)
        await _until(lambda: len(runs) == 100)
        await queue.stop()
        return seen, len(runs)

    seen, done = run(scenario)
    assert seen < done  # the rest of the loop (Kopf's watches) ran before the queue was empty


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_when_attempts_run_out_the_controller_is_told_once_and_a_spec_change_starts_again() -> None:
    elapsed = stopwatch()
    tries: list[float] = []
    told: list[tuple[float, int]] = []

    async def reconcile(key: ObjectKey) -> None:
        tries.append(elapsed())
        raise RetryLater("FulfillmentForbidden", "not allowed")

    async def give_up(key: ObjectKey, attempts: int, error: Exception) -> None:
        assert isinstance(error, RetryLater)
        told.append((elapsed(), attempts))

    store: Store[None] = Store()
    policy = RetryPolicy(initial_interval=1, factor=2, max_interval=60, max_attempts=3)
    queue: WorkQueue[ObjectKey] = WorkQueue("t", reconcile, retry=policy, give_up=give_up)
    queue.start()
    body = {"metadata": {"name": "o", "namespace": "ns", "generation": 1, "resourceVersion": "1"}}
    key = ObjectKey("ns", "o")
    observe(store, queue, "ADDED", body)
    await asyncio.sleep(3600)
    # A status change (same generation) at 1 h wakes it once: one more try, no retries, no second report.
    observe(store, queue, "MODIFIED", {"metadata": {**body["metadata"], "resourceVersion": "2"}})
    await asyncio.sleep(3600)
    waiting = queue.scheduled(key)
    # A spec change (a new generation) at 2 h: a fresh round of three attempts, reported again.
    observe(store, queue, "MODIFIED", {"metadata": {**body["metadata"], "generation": 2, "resourceVersion": "3"}})
    await asyncio.sleep(3600)
    await queue.stop()
    assert tries == [0, 1, 3, 3600, 7200, 7201, 7203]
    assert told == [(3, 3), (7203, 3)]
    assert waiting is False


def test_retry_delays_follow_the_policy() -> None:
    policy = RetryPolicy(initial_interval=2, factor=3, max_interval=50, max_attempts=5)
    assert [policy.delay(n) for n in range(1, 6)] == [2, 6, 18, 50, 50]
    assert not policy.exhausted(4)
    assert policy.exhausted(5)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"initial_interval": 0}, "initial retry interval"),
        ({"factor": 0.5}, "backoff factor"),
        ({"max_attempts": 0}, "maximum attempts"),
        ({"initial_interval": 5, "max_interval": 1}, "maximum retry interval"),
    ],
)
def test_a_policy_that_cannot_work_is_refused_with_a_reason(bad: dict[str, float], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        RetryPolicy(**bad)  # type: ignore[arg-type]
