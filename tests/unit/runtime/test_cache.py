"""The cache: it keeps what decisions read, and never the caller's object."""

from __future__ import annotations

from typing import Any

import kopf

from orderflow.runtime.cache import LEARN_AFTER, Store


def test_the_store_keeps_only_what_decisions_read() -> None:
    body = {
        "metadata": {
            "name": "o", "namespace": "ns", "uid": "u", "resourceVersion": "7",
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "me"},
        },
        "spec": {"a": 1},
    }  # fmt: skip
    store = Store()
    kept = store.get(store.put(body))
    assert kept is not None
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"keep": "me"}
    assert kept["spec"] == {"a": 1}
    assert "managedFields" in body["metadata"]  # the caller's body is left as it was


def test_what_a_reader_changes_never_reaches_the_store() -> None:
    store: Store[None] = Store()
    key = store.put({"metadata": {"name": "o", "namespace": "ns"}, "status": {"phase": "Pending"}})
    read = store.get(key)
    assert read is not None
    read["status"]["phase"] = "Completed"
    assert store.get(key) == {"metadata": {"name": "o", "namespace": "ns"}, "status": {"phase": "Pending"}}


def test_a_kopf_body_is_kept_as_plain_data() -> None:
    raw = {"metadata": {"name": "o", "namespace": "ns", "labels": {"a": "b"}}, "spec": {"items": [{"sku": "X"}]}}
    store: Store[None] = Store()
    kept = store.get(store.put(kopf.Body(raw)))
    assert kept == raw
    assert type(kept) is dict


def test_summaries_follow_puts_and_removals() -> None:
    store: Store[str] = Store(summary=lambda body: body["status"]["phase"])
    a = store.put({"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Pending"}})
    store.put({"metadata": {"name": "b", "namespace": "ns"}, "status": {"phase": "Pending"}})
    store.put({"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Completed"}})
    assert sorted(store.summaries()) == ["Completed", "Pending"]
    store.remove(a)
    assert list(store.summaries()) == ["Pending"]
    assert store.get(a) is None
    assert len(store) == 1


def test_every_object_reads_back_the_same_before_and_after_the_store_learns_its_dictionary() -> None:
    def order(i: int, phase: str) -> dict[str, Any]:
        return {
            "metadata": {"name": f"order-{i}", "namespace": "shop", "uid": f"uid-{i:04}", "resourceVersion": str(i)},
            "spec": {"items": [{"sku": f"SKU-{i % 7}", "quantity": i}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(phase == "Completed")}]},
        }

    store: Store[None] = Store()
    keys = [store.put(order(i, "Pending")) for i in range(LEARN_AFTER - 1)]  # compressed alone
    keys += [store.put(order(i, "Completed")) for i in range(LEARN_AFTER - 1, 3 * LEARN_AFTER)]  # learned
    store.put(order(0, "Completed"))  # replaces one kept from before
    assert [store.get(key) for key in keys] == [order(0, "Completed")] + [
        order(i, "Pending") for i in range(1, LEARN_AFTER - 1)
    ] + [order(i, "Completed") for i in range(LEARN_AFTER - 1, 3 * LEARN_AFTER)]
