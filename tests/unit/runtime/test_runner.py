"""What the controllers give Kopf to run with."""

from __future__ import annotations

import asyncio

from orderflow.runtime.runner import ForgetfulMemories, ResourceMemory


def test_kopf_keeps_no_memory_of_an_object_between_its_events() -> None:
    memories = ForgetfulMemories()
    listed = {"metadata": {"uid": "4b0c-listed"}}

    async def two_events() -> tuple[ResourceMemory, ResourceMemory]:
        return await memories.recall(listed, noticed_by_listing=True), await memories.recall(listed)

    first, second = asyncio.run(two_events())
    assert first.noticed_by_listing  # each as Kopf would make it
    assert not second.noticed_by_listing
    assert first is not second
    assert list(memories.iter_all_memories()) == []
