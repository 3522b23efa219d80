"""The status writer both controllers use: a merge patch of what changed, with the decided-on
resourceVersion, and one answer to each refusal (409 decide again, 404 gone, 400/422 an Event)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import REGISTRY

from orderflow.api.common import Model
from orderflow.runtime.pure.errors import ApiError, Conflict, Invalid, NotFound
from orderflow.runtime.status import CONFLICT_RETRY_SECONDS, Outcome, StatusWrite, StatusWriter

COMPONENT = "status-writer-test"
WRITER = StatusWriter("widgets", COMPONENT, logging.getLogger("orderflow.test.status"))


class Status(Model):
    phase: str = "Pending"
    note: str | None = None


class Answers:
    """A client whose status patches get ``error``, or succeed; it records what was asked."""

    def __init__(self, error: ApiError | None = None) -> None:
        self.error = error
        self.patches: list[tuple[str, str, str, dict[str, Any], str | None]] = []
        self.events: list[tuple[str, str, str]] = []

    async def find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        raise AssertionError("a status write reads nothing")

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("a status write creates nothing")

    async def patch(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        self.patches.append((plural, namespace, name, patch, subresource))
        if self.error is not None:
            raise self.error
        return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": "8"}, "status": patch["status"]}

    async def delete(self, plural: str, namespace: str, name: str, resource_version: str | None = None) -> None:
        raise AssertionError("a status write deletes nothing")

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def body() -> dict[str, Any]:
    return {
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "ns", "resourceVersion": "7"},
        "status": {"phase": "Pending", "note": "old"},
    }


def write(client: Answers, after: Status, before: Status | None = None) -> StatusWrite:
    before = before if before is not None else Status(note="old")
    return asyncio.run(WRITER.write(client, body(), before, after))


def conflicts() -> float:
    return REGISTRY.get_sample_value("orderflow_write_conflicts_total", {"controller": COMPONENT}) or 0.0


def test_a_changed_status_is_one_merge_patch_of_the_status_with_the_decided_on_version() -> None:
    client = Answers()
    result = write(client, Status(phase="Running"))
    assert result.outcome is Outcome.WRITTEN
    assert result.written
    assert result.retry_after is None
    ((plural, ns, name, patch, subresource),) = client.patches
    assert (plural, ns, name, subresource) == ("widgets", "ns", "w1", "status")
    # Only what changed, a removed field as null, and the version the decision read: stale -> 409.
    assert patch == {"metadata": {"resourceVersion": "7"}, "status": {"phase": "Running", "note": None}}
    assert result.body is not None
    assert result.body["metadata"]["resourceVersion"] == "8"
    assert client.events == []


def test_an_unchanged_status_is_not_written() -> None:
    client = Answers()
    result = write(client, Status(note="old"))
    assert result.outcome is Outcome.UNCHANGED
    assert client.patches == []
    assert result.retry_after is None


def test_a_conflict_is_counted_and_decided_again_after_a_short_wait() -> None:
    client = Answers(Conflict(409, "Conflict", "the object has been modified"))
    before = conflicts()
    result = write(client, Status(phase="Running"))
    assert result.outcome is Outcome.CONFLICT
    assert not result.written
    assert result.retry_after == CONFLICT_RETRY_SECONDS
    assert conflicts() == before + 1
    assert client.events == []


def test_a_status_of_an_object_gone_meanwhile_is_dropped() -> None:
    client = Answers(NotFound(404, "NotFound", "widgets w1 not found"))
    before = conflicts()
    result = write(client, Status(phase="Running"))
    assert result.outcome is Outcome.GONE
    assert result.retry_after is None
    assert client.events == []
    assert conflicts() == before


@pytest.mark.parametrize(
    "error", [Invalid(422, "Invalid", "status.phase: Unsupported value"), ApiError(400, "BadRequest", "no")]
)
def test_a_status_the_schema_refuses_is_a_warning_event_and_a_log_line(
    error: ApiError, caplog: pytest.LogCaptureFixture
) -> None:
    client = Answers(error)
    with caplog.at_level(logging.WARNING, logger="orderflow.test.status"):
        result = write(client, Status(phase="Running"))
    assert result.outcome is Outcome.REJECTED
    assert result.retry_after is None  # retrying would be refused the same way
    assert client.events == [("Warning", "StatusRejected", f"the API server refused the status: {error.message}")]
    assert [r.getMessage() for r in caplog.records] == [f"status of ns/w1 refused: {error.message}"]


@pytest.mark.parametrize("code", [403, 429, 500])
def test_other_errors_are_the_work_queues_to_retry(code: int) -> None:
    client = Answers(ApiError(code, "Error", "try later"))
    with pytest.raises(ApiError):
        write(client, Status(phase="Running"))
    assert client.events == []
