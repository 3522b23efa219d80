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
- a reconcile that raises is retried with exponential backoff, at most ``max_retries`` times,
  then left until the object changes again (never retried forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

from orderflow import metrics

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclasses.dataclass(frozen=True)
class ObjectKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, body: Any) -> ObjectKey:
        meta = body["metadata"]
        return cls(meta["namespace"], meta["name"])


class _Event(Protocol):
    """An Event a core decided on (both cores have their own class of this shape)."""

    @property
    def type(self) -> str: ...

    @property
    def reason(self) -> str: ...


def log_decision(
    logger: logging.Logger,
    kind: str,
    key: ObjectKey,
    phase_before: str,
    phase_after: str,
    transitions: Sequence[str] = (),
    actions: Sequence[str] = (),
    events: Iterable[_Event] = (),
) -> None:
    """One line for a decision that changed something: its phase change and transitions, the
    actions carried out, and the reasons of the Events it posted (not their messages: the Event
    holds those). Nothing for a decision that only refreshed the status, so the log reads as the
    objects' story. WARNING when the decision posted a Warning Event, else INFO.

    The line names only the object and what happened to it, never spec values: a shipping
    address or an email must never reach a log (see docs/deploy.md, "Logs and metrics")."""
    posted = list(events)
    other = [e.reason for e in posted if e.reason not in transitions]
    changed = phase_before != phase_after
    if not (changed or transitions or actions or other):
        return
    what = f"{phase_before} -> {phase_after}" if changed else phase_after
    if transitions:
        what += f" ({', '.join(transitions)})"
    parts = [what]
    if actions:
        parts.append(", ".join(actions))
    if other:
        parts.append("events " + ", ".join(other))
    level = logging.WARNING if any(e.type == "Warning" for e in posted) else logging.INFO
    logger.log(
        level,
        "%s %s: %s",
        kind,
        key,
        "; ".join(parts),
        extra={
            # Kopf's own name for the object a record is about, so one formatter serves both.
            "k8s_ref": {"kind": kind, "namespace": key.namespace, "name": key.name},
            "data": {
                "phase": phase_after,
                "previousPhase": phase_before,
                "transitions": list(transitions),
                "actions": list(actions),
                "events": [e.reason for e in posted],
            },
        },
    )


CONFLICT_RETRY_SECONDS = 0.5
"""After a 409 the newer object is on its way through the watch, whose event reconciles again;
this is only the safety net for a watch that is slow to deliver it."""


class Store:
    """The latest body of each watched object, as an informer's cache holds it.

    Fed by the watch only, never by write responses or GETs: a response can arrive after the watch
    has already delivered a newer version, and putting it here would hide that version from every
    later reconcile (a lost update). Every change reaches the store through the watch, and each
    watch event enqueues a reconcile that reads at least that version.
    """

    def __init__(self, transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._objects: dict[ObjectKey, dict[str, Any]] = {}
        # What this controller's decisions read of the kind, as client-go's SetTransform allows:
        # each controller keeps every watched object, so what it drops it drops that many times.
        self._transform = transform

    def put(self, body: Any) -> ObjectKey:
        key = ObjectKey.of(body)
        kept = strip(_plain(body))
        self._objects[key] = self._transform(kept) if self._transform else kept
        return key

    def remove(self, key: ObjectKey) -> None:
        self._objects.pop(key, None)

    def get(self, key: ObjectKey) -> dict[str, Any] | None:
        return self._objects.get(key)

    def values(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._objects.values()))


# What no decision reads and a client may make large: client-go's informers drop the same
# (cache.TransformStripManagedFields). kubectl apply's annotation holds a second copy of the spec.
UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def strip(body: dict[str, Any]) -> dict[str, Any]:
    """The object as decisions need it: without managedFields and the last-applied copy."""
    metadata = body.get("metadata") or {}
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if annotations:
        for name in UNREAD_ANNOTATIONS:
            annotations.pop(name, None)
    return body


def _plain(value: Any) -> Any:
    """A deep, plain-dict copy of a Kopf body, so later reads never see a half-updated view."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


Reconcile = Callable[[K], Awaitable[float | None]]
"""Reconcile one key; return seconds until it should be looked at again, or None."""


class WorkQueue(Generic[K]):
    """``name`` labels the queue's metrics: the controller's (``name`` on client-go's workqueue
    metrics, ``controller`` on controller-runtime's reconcile metrics, as Go controllers do)."""

    def __init__(
        self,
        name: str,
        reconcile: Reconcile[K],
        workers: int = 4,
        base_backoff: float = 0.5,
        max_backoff: float = 60.0,
        max_retries: int = 10,
    ) -> None:
        self.name = name
        self._reconcile = reconcile
        self.workers = workers
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._max_retries = max_retries
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._added_at: dict[K, float] = {}  # when each waiting key was added: its queue time
        self._running: dict[K, float] = {}  # when each running reconcile started

    # -- what the metrics read (orderflow.metrics.QueueState) ----------------------------------

    def depth(self) -> int:
        """Keys waiting for a worker, those added again while they run included (client-go's depth)."""
        return len(self._dirty)

    def running_since(self) -> list[float]:
        return list(self._running.values())

    # -- producers ---------------------------------------------------------------------------

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        metrics.WORKQUEUE_ADDS.labels(self.name).inc()
        self._added_at.setdefault(key, time.monotonic())
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        pending = self._timers.get(key)
        if pending and pending[0] <= due:
            return  # an earlier wake-up is already set
        if pending:
            pending[1].cancel()
        handle = asyncio.get_running_loop().call_later(delay, self._fire, key)
        self._timers[key] = (due, handle)

    def forget(self, key: K) -> None:
        """Drop pending wake-ups and the failure count, e.g. when the object is gone."""
        pending = self._timers.pop(key, None)
        if pending:
            pending[1].cancel()
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
            key = await self._queue.get()
            started = time.monotonic()
            added = self._added_at.pop(key, started)
            metrics.WORKQUEUE_QUEUE_SECONDS.labels(self.name).observe(started - added)
            self._dirty.discard(key)
            self._processing.add(key)
            self._running[key] = started
            try:
                again = await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                metrics.RECONCILES.labels(self.name, "error").inc()
                metrics.RECONCILE_ERRORS.labels(self.name).inc()
                if failures <= self._max_retries:
                    delay = min(self._max_backoff, self._base_backoff * 2 ** (failures - 1))
                    log.warning("reconcile of %s failed (%s); retry %d in %.1fs", key, exc, failures, delay)
                    metrics.WORKQUEUE_RETRIES.labels(self.name).inc()
                    self.add_after(key, delay)
                else:
                    log.error("reconcile of %s failed %d times; waiting for a change: %s", key, failures, exc)
            else:
                self._failures.pop(key, None)
                metrics.RECONCILES.labels(self.name, _result(again)).inc()
                if again is not None:
                    self.add_after(key, again)
            finally:
                elapsed = time.monotonic() - started
                metrics.RECONCILE_SECONDS.labels(self.name).observe(elapsed)
                metrics.WORKQUEUE_WORK_SECONDS.labels(self.name).observe(elapsed)
                self._running.pop(key, None)
                self._processing.discard(key)
                if key in self._dirty:
                    self._queue.put_nowait(key)


def _result(again: float | None) -> str:
    """controller-runtime's ``result`` label for a reconcile that returned ``again``."""
    if again is None:
        return "success"
    return "requeue" if again <= 0 else "requeue_after"
