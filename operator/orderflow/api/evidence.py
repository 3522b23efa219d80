"""What a finished Fulfillment's status must carry to be believed, by either controller.

Status is input: anyone with write access to ``fulfillments/status`` (or a restored backup) can
write a phase. A terminal phase has consequences elsewhere — the Order completes, retention
deletes — so it is taken only with the evidence the fulfillment controller always writes with
it. Part of the contract, so the order controller checks it without the fulfillment's code.
"""

from __future__ import annotations

import hashlib


def tracking_number(uid: str) -> str:
    """Deterministic per object, so a retried write can never issue a second number."""
    return "OF" + hashlib.sha256(uid.encode()).hexdigest()[:12].upper()
