"""JSON merge patch (RFC 7386) arithmetic: the patch between what was read and what is wanted.

Pure (no I/O): the status writer computes its patch here, and the client sends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MERGE_PATCH = "application/merge-patch+json"  # the content type


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns ``old`` into ``new`` (lists are replaced whole)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before or key not in old:
            patch[key] = value
    return patch
