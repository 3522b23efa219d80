"""Posting Events, as client-go's EventRecorder does: in the background, folded and rate-limited.

What to post is :class:`~orderflow.runtime.pure.events.Correlator`'s pure decision; this module
does the posting: a new Event object, or a raised ``count`` on the one posted before, through the
client's blocking calls in worker threads, never holding up or failing a reconcile.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any, Protocol

from orderflow.api.common import API_VERSION
from orderflow.runtime import metrics
from orderflow.runtime.pure.errors import NotFound
from orderflow.runtime.pure.events import Correlator, Drop, Event, Increment

log = logging.getLogger(__name__)

# Event posts that may wait for a slow API server at once; more are dropped, not queued without end.
MAX_PENDING_EVENTS = 1000


class Writer(Protocol):
    """What posting asks of the API server: ``runtime.client.Kube``'s blocking create and patch.
    (A Protocol, so that the client, whose facade holds a recorder, is not imported back.)"""

    def create(
        self, plural: str, namespace: str | None, body: dict[str, Any], version: str = ...
    ) -> dict[str, Any]: ...

    def patch(
        self,
        plural: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = ...,
        version: str = ...,
    ) -> dict[str, Any]: ...


class Recorder:
    """The Events of one controller (``component``), posted through ``kube``."""

    def __init__(self, kube: Writer, component: str) -> None:
        self.kube = kube
        self.component = component
        self._background: set[asyncio.Task[None]] = set()
        self._events = Correlator()
        metrics.EVENTS_DROPPED.labels(component, "rate-limited")
        metrics.EVENTS_DROPPED.labels(component, "backlog")

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Post an Event in the background: a lost Event must never hold up or fail a reconcile.

        As client-go's recorder does: each object gets a burst of Events and then one per few
        minutes, the same Event again raises the count of the one posted, and at most
        ``MAX_PENDING_EVENTS`` posts wait for a slow API server; the rest are dropped (counted in
        ``orderflow_events_dropped_total``)."""
        meta = obj["metadata"]
        at = _now()  # when it happened, not when a busy loop gets to post it (as client-go stamps it)
        uid = str(meta.get("uid") or f"{meta.get('namespace')}/{meta['name']}")
        wanted = Event(type_, reason, message)
        posting = self._events.decide(uid, wanted, time.monotonic())
        if isinstance(posting, Drop):
            metrics.EVENTS_DROPPED.labels(self.component, "rate-limited").inc()
            return
        if len(self._background) >= MAX_PENDING_EVENTS:
            metrics.EVENTS_DROPPED.labels(self.component, "backlog").inc()
            return

        async def post() -> None:
            try:
                if isinstance(posting, Increment):
                    try:
                        await asyncio.to_thread(self._count, meta["namespace"], posting.name, posting.count, at)
                        return
                    except NotFound:  # expired (an Event lives an hour by default): post it anew
                        self._events.gone(uid, wanted)
                name = await asyncio.to_thread(self._create, obj, type_, reason, message, at)
                self._events.created(uid, wanted, name)
            except Exception as exc:  # Events are best effort, as in client-go's recorder
                log.warning("could not post Event %s on %s/%s: %s", reason, meta.get("namespace"), meta["name"], exc)

        task = asyncio.get_running_loop().create_task(post())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def flush(self) -> None:
        """Wait for the Events being posted now."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _create(self, obj: Mapping[str, Any], type_: str, reason: str, message: str, now: str) -> str:
        """Post a new Event about ``obj``, which happened at ``now``; returns its name."""
        meta = obj["metadata"]
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", API_VERSION),
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": f"orderflow.dev/{self.component}",
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        created = self.kube.create("events", meta["namespace"], body, version="v1")
        return str(created["metadata"]["name"])

    def _count(self, namespace: str, name: str, count: int, now: str) -> None:
        """The same Event happened again at ``now``: raise its ``count`` and move its
        ``lastTimestamp``, as client-go's recorder does instead of posting a copy."""
        self.kube.patch("events", namespace, name, {"count": count, "lastTimestamp": now}, version="v1")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # Events keep seconds
