"""The controllers' log: one line per decision that changed something, and the formats (text and
JSON) that every record, ours and Kopf's, goes through."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

from orderflow.runtime.cache import ObjectKey
from orderflow.runtime.pure.events import Event


def log_decision(
    logger: logging.Logger,
    kind: str,
    key: ObjectKey,
    phase_before: str,
    phase_after: str,
    transitions: Sequence[str] = (),
    actions: Sequence[str] = (),
    events: Iterable[Event] = (),
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


class JsonFormatter(logging.Formatter):
    """One JSON object a line, naming the object a message is about when Kopf knows it.

    A record's ``data`` (a dict, as log_decision and the start-up line pass)
    adds its keys, so a log pipeline can select on them without parsing the message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        k8s = getattr(record, "k8s_ref", None)
        if k8s:
            entry["object"] = k8s
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            for key, value in data.items():
                entry.setdefault(key, value)  # never hides the message, level or object
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message``; Kopf's records about an object get ``[namespace/name]``
    before the message (Kopf's own formatter would add it, ours replaces Kopf's), our own name
    the object in the message already."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        k8s = getattr(record, "k8s_ref", None)
        if isinstance(k8s, dict) and record.name.startswith("kopf") and k8s.get("name"):
            where = f"{k8s['namespace']}/{k8s['name']}" if k8s.get("namespace") else str(k8s["name"])
            record.message = f"[{where}] {record.message}"
        return super().formatMessage(record)


class KopfRetries(logging.Filter):
    """Kopf logs every failed attempt of a request at ERROR, even when it will try again: the watch
    of a restarting API server says "Request attempt #1/9 failed; will retry: ... 429 storage is
    (re)initializing", which is routine, not an error anyone must act on. Those records become
    WARNING; the last attempt ("escalating") stays ERROR, as does everything else."""

    _RETRYING = re.compile(
        r"Request attempt #\d+(?:/\d+)? failed; (?:will retry|(?:TCP|SSL) closed; will re-authenticate)"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.ERROR
            and record.name.startswith("kopf")
            and self._RETRYING.match(record.getMessage())
        ):
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def log_handler(log_format: str, stream: IO[str] | None = None) -> logging.Handler:
    """The one handler every record goes through (ours and Kopf's), to stderr by default."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    # On the handler, not on a logger: a logger's filters do not see its children's records.
    handler.addFilter(KopfRetries())
    return handler
