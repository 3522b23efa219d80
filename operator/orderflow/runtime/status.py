"""Writing a status: what the controllers do when the API server refuses the write.

Both controllers write their kind's ``status`` subresource the same way: a merge patch of only
what changed, carrying the resourceVersion the decision was made on, so a decision made on a
version that is no longer current is refused (409) and made again on the newer one.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import Any

from orderflow.api.common import Model
from orderflow.runtime import metrics
from orderflow.runtime.client import KubeClient
from orderflow.runtime.pure.errors import ApiError, Conflict, NotFound
from orderflow.runtime.pure.mergepatch import merge_patch

CONFLICT_RETRY_SECONDS = 0.5
"""After a 409 the newer object is on its way through the watch, whose event reconciles again;
this is only the safety net for a watch that is slow to deliver it."""


class Outcome(enum.Enum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"  # nothing to write: no request made
    CONFLICT = "conflict"  # 409: decided on a version that is no longer current
    GONE = "gone"  # 404: the object was deleted meanwhile; its watch event says so
    REJECTED = "rejected"  # 400/422: the schema refuses the status itself; a Warning Event says so


@dataclasses.dataclass(frozen=True)
class StatusWrite:
    outcome: Outcome
    body: dict[str, Any] | None = None  # the object as the write left it (WRITTEN only)

    @property
    def written(self) -> bool:
        return self.outcome is Outcome.WRITTEN

    @property
    def retry_after(self) -> float | None:
        """When to decide again because of the write itself: only after a 409."""
        return CONFLICT_RETRY_SECONDS if self.outcome is Outcome.CONFLICT else None


@dataclasses.dataclass(frozen=True)
class StatusWriter:
    """Writes the status of one kind (``plural``) for one controller (``component``: the label of
    its conflict count); ``log`` is the controller's, so a refused status is logged where the rest
    of its story is."""

    plural: str
    component: str
    log: logging.Logger

    async def write(self, kube: KubeClient, body: dict[str, Any], before: Model, after: Model) -> StatusWrite:
        """Write ``after`` over ``before`` (the status the decision read) on the object ``body``."""
        new = after.wire()
        if new == before.wire():
            return StatusWrite(Outcome.UNCHANGED)
        meta = body["metadata"]
        patch = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "status": merge_patch(body.get("status") or {}, new),
        }
        try:
            updated = await kube.patch(self.plural, meta["namespace"], meta["name"], patch, "status")
        except Conflict:
            # The watch brings the newer version and its event reconciles again (the store is fed
            # by the watch only).
            metrics.CONFLICTS.labels(self.component).inc()
            return StatusWrite(Outcome.CONFLICT)
        except NotFound:
            return StatusWrite(Outcome.GONE)
        except ApiError as exc:
            if exc.code not in (400, 422):
                raise  # 429, 5xx, 403: the work queue retries with backoff
            # The schema refuses the status itself (an older CRD, say): it cannot carry a
            # condition, so the Event is where it shows. Retrying would be refused the same way.
            # (runtime.pure.errors has replaced the values the message quoted: no personal data.)
            kube.event(body, "Warning", "StatusRejected", f"the API server refused the status: {exc.message}")
            self.log.warning("status of %s/%s refused: %s", meta["namespace"], meta["name"], exc.message)
            return StatusWrite(Outcome.REJECTED)
        return StatusWrite(Outcome.WRITTEN, updated)
