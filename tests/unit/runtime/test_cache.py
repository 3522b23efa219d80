"""The cache: it keeps what decisions read, and never the caller's object."""

from __future__ import annotations

from orderflow.runtime.cache import Store


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
