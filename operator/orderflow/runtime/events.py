"""An Event a decision asks to be posted: what both pure cores hand back beside a status.

Here, in ``runtime``, and not in ``orderflow.api``: no CRD is generated from it and no object
stores it; it is what the client posts (``AsyncKube.event``) and the log names
(``runtime.logs.log_decision``), so it belongs with that plumbing. And it is pure, a frozen
dataclass importing nothing, so the cores (``order.workflow``, ``fulfillment.workflow``) may
import it and stay state in, decision out: the import-linter contract forbids only the modules
that do I/O.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Event:
    """A Kubernetes Event about the object decided on. ``message`` is read by many (``kubectl
    describe``, pipelines that collect Events): it never carries personal data."""

    type: str  # Normal or Warning
    reason: str  # CamelCase, as a condition's reason
    message: str
