"""Reading a watched object's body as the contract's models: as far as this version can.

Pure (pydantic only), so the cores may use it too: the order core reads a Fulfillment's status
and address with it (``order.mirror.FulfillmentAsRead.from_body``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
D = TypeVar("D")


def lenient(model: type[M], raw: Any, default: D) -> M | D:
    """``raw`` as ``model``, or ``default`` when this version cannot read it (written by a newer
    version, by hand, or broken). For what a controller only follows, never for what it is asked
    to do: a spec it cannot read is reported as such (an InvalidSpec condition), not guessed at."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        return default


def status_of(body: Mapping[str, Any], model: type[M]) -> M:
    """The status as far as it can be read: one this version cannot read counts as not reported
    yet (the model's defaults), and the next status written replaces it."""
    return lenient(model, body.get("status") or {}, model())


def generation_of(body: Mapping[str, Any]) -> int:
    """``metadata.generation``; 1 for a body that has none (a test's, or one created just now)."""
    return int(body["metadata"].get("generation", 1))


def created_at(body: Mapping[str, Any]) -> datetime.datetime | None:
    """``metadata.creationTimestamp``, which the API server sets and nobody can change: the start
    of a deadline's wall clock. None for a body that has none (a test's)."""
    stamp = body["metadata"].get("creationTimestamp")
    if not stamp:
        return None
    return datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
