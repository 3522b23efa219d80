"""RFC 7386 merge patches: the patch between what was read and what is wanted."""

from __future__ import annotations

from orderflow.runtime.pure.mergepatch import merge_patch


def test_merge_patch_removes_sets_and_recurses() -> None:
    old = {"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "gone": True}
    new = {"a": 1, "b": {"x": 1}, "c": [1, 2], "d": None}
    assert merge_patch(old, new) == {"gone": None, "b": {"y": None}, "c": [1, 2], "d": None}
