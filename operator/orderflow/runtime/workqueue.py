"""A level-triggered reconcile loop on top of Kopf's watches, shared by both controllers.

Kopf watches the resources and calls ``@kopf.on.event`` handlers, which write nothing to the
objects (no finalizer, no annotations). Those handlers only store the latest body and add the
object's key to this queue. Workers take keys and call the controller's reconcile function, which
reads the latest state, decides, writes, and says when to look again.

Why not Kopf's daemons or timers: they need a finalizer on every object (one more write each, and
an object that cannot be deleted while its controller is down) and have no "wake me in N
seconds, or sooner if the object changes" primitive. The queue has the semantics of client-go's
workqueue, written out here because no maintained asyncio package provides them:
- a key is reconciled by one worker at a time; adds while it runs fold into one more run;
- ``add_after`` keeps only the earliest pending wake-up per key;
- a reconcile that raises is retried with exponential backoff as the controller's
  ``RetryPolicy`` says; when its attempts run out, ``give_up`` is told (the controller marks the
  object Stalled) and the key waits for a change of the object's spec, which starts a fresh
  round (never retried forever);
- a key added with ``low_priority`` waits until no other key does, as controller-runtime's
  priority queue does with the objects of an initial list: after a restart over many finished
  objects, each is looked at again, but a new or changed object goes first. A key added both
  ways runs once, as soon as the urgent add allows.

The queue keeps time on its event loop's clock, the one its wake-ups fire on (``_now``): which
wake-up is the earliest, how long a key waited and how long a reconcile ran are all read there.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from orderflow.runtime import metrics
from orderflow.runtime.cache import ObjectKey, Store
from orderflow.runtime.retry import RetryLater, RetryPolicy

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


Reconcile = Callable[[K], Awaitable[float | None]]
"""Reconcile one key; return seconds until it should be looked at again, or None."""

GiveUp = Callable[[K, int, Exception], Awaitable[None]]
"""Told once per round when a key's attempts have run out: the key, the count, the last error."""


class WorkQueue(Generic[K]):
    """``name`` labels the queue's metrics: the controller's (``name`` on client-go's workqueue
    metrics, ``controller`` on controller-runtime's reconcile metrics, as Go controllers do)."""

    def __init__(
        self,
        name: str,
        reconcile: Reconcile[K],
        workers: int = 4,
        retry: RetryPolicy | None = None,
        give_up: GiveUp[K] | None = None,
    ) -> None:
        self.name = name
        metrics.prime(name)
        self._reconcile = reconcile
        self.workers = workers
        self.retry = retry or RetryPolicy()
        self._give_up = give_up
        self._urgent: deque[K] = deque()  # keys to run, in order; a key may also be in _later
        self._later: deque[K] = deque()  # keys added with low priority only, in order
        self._ready = asyncio.Event()  # set when either holds a key
        self._dirty: set[K] = set()
        self._dirty_urgent: set[K] = set()  # the waiting keys added at least once without low priority
        self._processing: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._added_at: dict[K, float] = {}  # when each waiting key was added: its queue time
        self._running: dict[K, float] = {}  # when each running reconcile started

    # -- what the metrics read (orderflow.runtime.metrics.QueueState) ----------------------------------

    def depth(self) -> int:
        """Keys waiting for a worker, those added again while they run included (client-go's depth)."""
        return len(self._dirty)

    def running_for(self) -> list[float]:
        """How long each running reconcile has run so far, in seconds."""
        at = _now()
        return [max(0.0, at - started) for started in list(self._running.values())]

    # -- producers ---------------------------------------------------------------------------

    def add(self, key: K, *, low_priority: bool = False) -> None:
        if key in self._dirty:
            if low_priority or key in self._dirty_urgent:
                return
            self._dirty_urgent.add(key)  # waiting with low priority: now urgent
            self._enqueue(key)
            return
        self._dirty.add(key)
        if not low_priority:
            self._dirty_urgent.add(key)
        metrics.WORKQUEUE_ADDS.labels(self.name, self.name).inc()
        self._added_at.setdefault(key, _now())
        self._enqueue(key)

    def _enqueue(self, key: K) -> None:
        """Line a waiting key up for a worker, unless it runs now (its worker re-queues it)."""
        if key in self._processing:
            return
        (self._urgent if key in self._dirty_urgent else self._later).append(key)
        self._ready.set()

    async def _next(self) -> K:
        """The next key to run: urgent ones first, each in the order it was added. An entry may be
        stale (run already from the other lane, or running now): those are skipped."""
        while True:
            for lane in (self._urgent, self._later):
                while lane:
                    key = lane.popleft()
                    if key in self._dirty and key not in self._processing:
                        return key
            self._ready.clear()
            await self._ready.wait()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._timers.get(key)
        if pending and pending[0] <= due:
            return  # an earlier wake-up is already set
        if pending:
            pending[1].cancel()
        # In a context of its own: a timer keeps the context it was set in until it fires, and a
        # wake-up set from a Kopf handler would keep that event's body, patch and logger alive
        # for as long as the step lasts (hours; 20 KiB an object after a restart's listing).
        handle = loop.call_at(due, self._fire, key, context=contextvars.Context())
        self._timers[key] = (due, handle)

    def forget(self, key: K) -> None:
        """Drop pending wake-ups and the failure count, e.g. when the object is gone."""
        pending = self._timers.pop(key, None)
        if pending:
            pending[1].cancel()
        self._failures.pop(key, None)

    def failing(self, key: K) -> bool:
        return key in self._failures

    def scheduled(self, key: K) -> bool:
        """Whether a wake-up (a timed look, a retry) is pending for the key."""
        return key in self._timers

    def exhausted(self, key: K) -> bool:
        """Whether the key's attempts have run out in this round (it waits for a change)."""
        return self.retry.exhausted(self._failures.get(key, 0))

    def fresh_round(self, key: K) -> None:
        """Forget a key's failures: its spec changed, so what failed may now succeed."""
        self._failures.pop(key, None)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    # -- workers -----------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work(), name=f"{self.name}-{i}") for i in range(self.workers)]
        metrics.track_queue(self)

    async def stop(self) -> None:
        metrics.untrack_queue(self)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    async def _work(self) -> None:
        while True:
            # A reconcile that decides from the cache alone never waits for anything: without a
            # turn of the event loop between keys, a worker would hold it until the queue is
            # empty, and Kopf's watches (a restart's listing, the next new object) with it.
            await asyncio.sleep(0)
            key = await self._next()
            started = _now()
            added = self._added_at.pop(key, started)
            metrics.WORKQUEUE_QUEUE_SECONDS.labels(self.name, self.name).observe(started - added)
            self._dirty.discard(key)
            self._dirty_urgent.discard(key)
            self._processing.add(key)
            self._running[key] = started
            try:
                again = await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(key, exc)
            else:
                self._failures.pop(key, None)
                metrics.RECONCILES.labels(self.name, _result(again)).inc()
                if again is not None:
                    self.add_after(key, again)
            finally:
                elapsed = _now() - started
                metrics.RECONCILE_SECONDS.labels(self.name).observe(elapsed)
                metrics.WORKQUEUE_WORK_SECONDS.labels(self.name, self.name).observe(elapsed)
                self._running.pop(key, None)
                self._processing.discard(key)
                if key in self._dirty:
                    self._enqueue(key)

    async def _failed(self, key: K, exc: Exception) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        metrics.RECONCILES.labels(self.name, "error").inc()
        metrics.RECONCILE_ERRORS.labels(self.name).inc()
        metrics.RECONCILE_ERRORS_CR.labels(self.name).inc()
        attempts = f"attempt {failures} of {self.retry.max_attempts}"
        if not self.retry.exhausted(failures):
            delay = self.retry.delay(failures)
            level = logging.INFO if isinstance(exc, RetryLater) else logging.WARNING
            log.log(level, "reconcile of %s failed (%s), %s; next in %.1fs", key, exc, attempts, delay)
            metrics.WORKQUEUE_RETRIES.labels(self.name, self.name).inc()
            self.add_after(key, delay)
            return
        if failures > self.retry.max_attempts:
            return  # given up already in this round: one more try, as a change of the object asked
        log.error("reconcile of %s failed, %s; waiting for a change to its spec: %s", key, attempts, exc)
        metrics.RETRIES_EXHAUSTED.labels(self.name).inc()
        if self._give_up is not None:
            try:
                await self._give_up(key, failures, exc)
            except Exception as report:  # the API server that failed the reconcile may fail this too
                log.error("could not report on %s that its retries ran out: %s", key, report)


def _now() -> float:
    """The running event loop's clock, on which the queue's wake-ups fire. Outside a loop (a
    metrics scrape, from its own thread) ``time.monotonic()``, which is the clock of asyncio's own
    loops; a test's loop may run a clock of its own, and the queue must read the same one."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def _result(again: float | None) -> str:
    """controller-runtime's ``result`` label for a reconcile that returned ``again``."""
    if again is None:
        return "success"
    return "requeue" if again <= 0 else "requeue_after"


def listed(event_type: str | None) -> bool:
    """Whether Kopf delivered the object by listing it (at start, or when its watch had to start
    over) rather than as a change: such a key waits behind the changed ones (WorkQueue.add's
    ``low_priority``), and is still reconciled."""
    return event_type is None


def observe(store: Store[Any], queue: WorkQueue[ObjectKey], event_type: str | None, body: Any) -> None:
    """What a watch event of the kind a controller reconciles does (the ``@kopf.on.event``
    handler's whole job): the body into the store, then its key into the queue, so the reconcile
    reads at least this version; a deletion takes the body out and drops the key's pending
    wake-ups and failure count (its reconcile, if one is queued, finds nothing and stops)."""
    if event_type == "DELETED":
        key = ObjectKey.of(body)
        store.remove(key)
        queue.forget(key)
        return
    key = ObjectKey.of(body)
    if queue.failing(key):
        old = store.get(key)
        if old is None or old["metadata"].get("generation") != body["metadata"].get("generation"):
            queue.fresh_round(key)  # a spec change: what failed may succeed now
    queue.add(store.put(body), low_priority=listed(event_type))
