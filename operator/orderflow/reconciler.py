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
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

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

    def __init__(self) -> None:
        self._objects: dict[ObjectKey, dict[str, Any]] = {}

    def put(self, body: Any) -> ObjectKey:
        key = ObjectKey.of(body)
        self._objects[key] = strip(_plain(body))
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
    """``name`` labels the queue's metrics (reconciles run, reconciles that raised): the controller's."""

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
        self._workers = workers
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._max_retries = max_retries
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- producers ---------------------------------------------------------------------------

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
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
        self._tasks = [loop.create_task(self._work(), name=f"{self.name}-{i}") for i in range(self._workers)]

    async def stop(self) -> None:
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
            self._dirty.discard(key)
            self._processing.add(key)
            metrics.RECONCILES.labels(self.name).inc()
            try:
                again = await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                metrics.RECONCILE_ERRORS.labels(self.name).inc()
                if failures <= self._max_retries:
                    delay = min(self._max_backoff, self._base_backoff * 2 ** (failures - 1))
                    log.warning("reconcile of %s failed (%s); retry %d in %.1fs", key, exc, failures, delay)
                    self.add_after(key, delay)
                else:
                    log.error("reconcile of %s failed %d times; waiting for a change: %s", key, failures, exc)
            else:
                self._failures.pop(key, None)
                if again is not None:
                    self.add_after(key, again)
            finally:
                self._processing.discard(key)
                if key in self._dirty:
                    self._queue.put_nowait(key)
