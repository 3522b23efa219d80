"""Writing a status: what the controllers do when the API server refuses the write."""

from __future__ import annotations

CONFLICT_RETRY_SECONDS = 0.5
"""After a 409 the newer object is on its way through the watch, whose event reconciles again;
this is only the safety net for a watch that is slow to deliver it."""
