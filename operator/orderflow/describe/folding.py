"""The Events of both objects: each one that repeats a row is folded into it, the others are rows
of their own. No I/O.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from orderflow.api.common import GROUP
from orderflow.describe.objects import parse_time
from orderflow.describe.rows import Draft
from orderflow.describe.shape import FULFILLMENT, ORDER, RANK, iso

# An Event is posted after the status write it tells of, with a time in whole seconds.
_FOLD_SLACK = datetime.timedelta(milliseconds=5)
_FOLD_AFTER = datetime.timedelta(seconds=10)


@dataclasses.dataclass(frozen=True)
class Event:
    time: datetime.datetime
    object: str
    type: str
    reason: str
    message: str
    count: int
    last: datetime.datetime | None


def event_of(raw: Mapping[str, Any], uids: Mapping[str, str], names: Mapping[str, str | None]) -> Event | None:
    """An Event of one of the two objects, or None (another object, or an earlier one of the same name)."""
    involved = raw.get("involvedObject") or raw.get("regarding") or {}
    kind = involved.get("kind")
    if kind not in (ORDER, FULFILLMENT) or not str(involved.get("apiVersion", GROUP)).startswith(GROUP):
        return None
    uid = involved.get("uid")
    if uid:
        if uids.get(uid) != kind:
            return None
    elif involved.get("name") != names.get(kind):
        return None
    meta = raw.get("metadata") or {}
    first = (
        parse_time(raw.get("eventTime"))
        or parse_time(raw.get("firstTimestamp"))
        or parse_time(raw.get("lastTimestamp"))
        or parse_time(meta.get("creationTimestamp"))
    )
    if first is None:
        return None
    series = raw.get("series") or {}
    count = int(series.get("count") or raw.get("count") or 1)
    last = parse_time(raw.get("lastTimestamp")) or parse_time(series.get("lastObservedTime"))
    return Event(
        time=first,
        object=kind,
        type=str(raw.get("type") or "Normal"),
        reason=str(raw.get("reason") or ""),
        message=str(raw.get("message") or raw.get("note") or ""),
        count=count,
        last=last,
    )


def fold(rows: list[Draft], events: list[Event]) -> list[Draft]:
    """Fold each Event into the row it repeats; the others become rows of their own.

    An Event is posted after the write it tells of, by the same controller (the same clock), with
    its time cut to whole seconds: it can be a row's only from the row's second on, and a little
    after. Pairs are made closest first, so two Events of one reason close together (a pause and a
    resume sent within a second) each find their own row, and one whose message contradicts a
    row (``paused=true`` for a row of ``paused=false``) is never taken for it."""
    pairs: list[tuple[tuple[bool, float, float], int, int]] = []
    for e, event in enumerate(events):
        for r, row in enumerate(rows):
            if row.object != event.object or event.reason not in row.folds:
                continue
            if any(token in event.message for token in row.conflicts):
                continue
            second = row.time.replace(microsecond=0)
            if not second - _FOLD_SLACK <= event.time <= row.time + _FOLD_AFTER:
                continue
            late = abs((event.time - second).total_seconds())
            pairs.append(((RANK[row.kind] >= RANK["condition"], late, -event.time.timestamp()), e, r))
    folded: set[int] = set()
    for _, e, r in sorted(pairs):
        if e in folded or rows[r].folded:
            continue
        rows[r].folded = True
        folded.add(e)
    extra: list[Draft] = []
    for e, event in enumerate(events):
        if e in folded:
            continue
        detail = ("Warning: " if event.type == "Warning" else "") + event.message
        if event.count > 1:
            detail += f" ({event.count} times" + (f", last at {iso(event.last)})" if event.last else ")")
        extra.append(Draft(event.time, event.object, "event", event.reason, detail, whole_seconds=True))
    return extra
