"""An Event a decision asks to be posted: what both pure cores hand back beside a status.

Here, in ``runtime.pure``, and not in ``orderflow.api``: no CRD is generated from it and no object
stores it; it is what the recorder posts (``runtime.recorder``) and the log names
(``runtime.logs.log_decision``), so it belongs beside that plumbing. And it is pure, frozen
dataclasses and a correlator on a clock the caller passes, so the cores (``order.workflow``,
``fulfillment.workflow``) may import it and stay state in, decision out.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Event:
    """A Kubernetes Event about the object decided on. ``message`` is read by many (``kubectl
    describe``, pipelines that collect Events): it never carries personal data."""

    type: str  # Normal or Warning
    reason: str  # CamelCase, as a condition's reason
    message: str


# -- what client-go's EventCorrelator does, the parts a controller needs -----------------------


@dataclasses.dataclass(frozen=True)
class Drop:
    """Not posted: the object has had its share of Events for now."""


@dataclasses.dataclass(frozen=True)
class Create:
    """A new Event object."""


@dataclasses.dataclass(frozen=True)
class Increment:
    """The same Event again: raise the existing object's ``count`` (and ``lastTimestamp``)."""

    name: str
    count: int


Posting = Drop | Create | Increment


@dataclasses.dataclass
class _Bucket:
    tokens: float
    at: float


@dataclasses.dataclass
class _Seen:
    name: str | None  # the Event object's name, once created
    count: int
    at: float  # when last posted


class Correlator:
    """Which Events to post, and how, as client-go's recorder decides (its defaults):

    - each object gets a token bucket: ``burst`` Events at once, then one per ``refill`` seconds;
      beyond that an Event is dropped, so no object floods the API server or ``kubectl describe``;
    - the same Event again (same object, type, reason and message) within ``window`` seconds is
      one object whose ``count`` grows, not a new object each time.

    Pure, on a clock the caller passes; memory is bounded to ``size`` objects and Events, the
    least recently used forgotten first."""

    def __init__(self, burst: int = 25, refill: float = 300.0, window: float = 600.0, size: int = 4096) -> None:
        self.burst, self.refill, self.window, self.size = burst, refill, window, size
        self._buckets: dict[str, _Bucket] = {}
        self._seen: dict[tuple[str, str, str, str], _Seen] = {}

    def decide(self, uid: str, event: Event, now: float) -> Posting:
        bucket = self._buckets.pop(uid, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) / self.refill)
        bucket.at = now
        self._buckets[uid] = bucket  # most recently used last
        _forget_oldest(self._buckets, self.size)
        if bucket.tokens < 1:
            return Drop()
        bucket.tokens -= 1
        key = (uid, event.type, event.reason, event.message)
        seen = self._seen.pop(key, None)
        if seen is not None and seen.name is not None and now - seen.at <= self.window:
            seen.count += 1
            seen.at = now
            self._seen[key] = seen
            return Increment(seen.name, seen.count)
        self._seen[key] = _Seen(None, 1, now)
        _forget_oldest(self._seen, self.size)
        return Create()

    def created(self, uid: str, event: Event, name: str) -> None:
        """The Event object ``decide`` asked for exists now, as ``name``."""
        seen = self._seen.get((uid, event.type, event.reason, event.message))
        if seen is not None:
            seen.name = name

    def gone(self, uid: str, event: Event) -> None:
        """The Event object to increment no longer exists (expired): the next one is created."""
        self._seen.pop((uid, event.type, event.reason, event.message), None)


def _forget_oldest(entries: dict[Any, Any], size: int) -> None:
    while len(entries) > size:
        del entries[next(iter(entries))]
