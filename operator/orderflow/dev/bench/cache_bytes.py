"""Bytes per cached object: what each controller's watch cache keeps for one finished workflow.

`.venv/bin/python -m orderflow.dev.bench.cache_bytes` builds a realistic finished Order and its shipped
Fulfillment with the controllers' own cores (as the API server would return them, with the
managedFields and last-applied annotation kubectl apply adds), puts 1,000 copies of each into the
controllers' stores, and prints the memory tracemalloc attributes to each object; then what
Kopf itself keeps of each object it has seen, with its own memories and with the controllers'.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

from kopf._core.reactor.inventory import ResourceMemories  # Kopf's own, as kopf.run makes it

from orderflow.api.common import API_VERSION
from orderflow.api.fulfillment import FulfillmentSpec, FulfillmentStatus
from orderflow.api.order import OrderSpec, OrderStatus
from orderflow.dev import manifests
from orderflow.fulfillment import workflow as fulfillment_core
from orderflow.order import mirror as order_mirror
from orderflow.order import workflow as order_core
from orderflow.runtime.cache import Store
from orderflow.runtime.runner import ForgetfulMemories

T0 = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)
ADDRESS = {"name": "Ada Lovelace", "street": "12 St James's Square", "city": "London", "postalCode": "SW1Y 4JH",
           "country": "GB"}  # fmt: skip
ITEMS = [{"sku": "BOOK-ANALYTICAL-ENGINE", "quantity": 1}, {"sku": "PEN-FOUNTAIN-BLUE", "quantity": 2}]
COPIES = 1000


def as_returned(applied: dict[str, Any], uid: str, status: dict[str, Any]) -> dict[str, Any]:
    """``applied`` as the API server returns it after ``kubectl apply`` and a status write."""
    fields: dict[str, Any] = {k: {} for k in applied["spec"]}
    metadata = {
        "name": applied["metadata"]["name"], "namespace": "shop", "uid": uid, "resourceVersion": "1234567",
        "generation": 1, "creationTimestamp": T0.isoformat(),
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied)},
        "managedFields": [
            {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": API_VERSION,
             "time": T0.isoformat(), "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": fields}},
            {"manager": "orderflow", "operation": "Update", "subresource": "status", "time": T0.isoformat(),
             "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:phase": {}, "f:conditions": {}}}},
        ],
    }  # fmt: skip
    return {**applied, "metadata": metadata, "status": status}


def bodies() -> tuple[dict[str, Any], dict[str, Any]]:
    customer: dict[str, Any] = {"customerEmail": "ada@example.com", "items": ITEMS, "shippingAddress": ADDRESS}
    applied_order = manifests.order("order-1042", **customer)
    applied_fulfillment = manifests.fulfillment(
        "order-1042", **customer, orderRef={"name": "order-1042", "uid": "o" * 36}, started=True,
        stepDurationSeconds={"picking": 0, "packing": 0},
    )  # fmt: skip
    observed = fulfillment_core.ObservedFulfillment(
        "order-1042", "f" * 36, 1, FulfillmentSpec.model_validate(applied_fulfillment["spec"]), FulfillmentStatus()
    )
    shipped = fulfillment_core.decide(observed, T0, fulfillment_core.StepTimes(0, 0)).status
    fulfillment = as_returned(applied_fulfillment, "f" * 36, shipped.wire())
    order = order_core.ObservedOrder(
        "order-1042", "shop", "o" * 36, 1, OrderSpec.model_validate(applied_order["spec"]), OrderStatus()
    )
    status = order_core.decide(order, None, T0, 30).status
    seen = order_mirror.FulfillmentAsRead.from_body(fulfillment)
    status = order_core.decide(order_core.ObservedOrder(**{**order.__dict__, "status": status}), seen, T0, 30).status
    assert status is not None
    return as_returned(applied_order, "o" * 36, status.wire()), fulfillment


def another(text: str, i: int) -> str:
    """Workflow ``i`` of the same shape: its own names, uids, resource version and times, as in
    a real cache (the store's dictionary would flatter copies that differ in the name alone)."""
    when = (T0 + datetime.timedelta(seconds=7 * i)).isoformat()[:19]
    for same, own in (("o" * 36, str(uuid.UUID(int=2 * i))), ("f" * 36, str(uuid.UUID(int=2 * i + 1))),
                      ("order-1042", f"order-{100_000 + i}"), ("1234567", str(1_234_567 + 13 * i)),
                      (T0.isoformat()[:19], when)):  # fmt: skip
        text = text.replace(same, own)
    return text


def bytes_each(body: dict[str, Any], store: Callable[[], Store[Any]] | None) -> int:
    text = json.dumps(body)
    tracemalloc.start()
    if store is None:
        kept: list[Any] = [json.loads(text) for _ in range(COPIES)]
    else:
        cache = store()
        for i in range(COPIES):
            cache.put(json.loads(another(text, i)))
        kept = [cache]
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return used // COPIES


def kopf_bytes_each(memories: ResourceMemories) -> int:
    """What Kopf keeps of each object once a watch event of it has been handled."""
    uids = [str(uuid.UUID(int=i)) for i in range(COPIES)]  # the watch event's own, before counting

    async def see_each() -> None:
        for uid in uids:
            await memories.recall({"metadata": {"uid": uid}}, noticed_by_listing=True)

    tracemalloc.start()
    asyncio.run(see_each())
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return used // COPIES


def main() -> None:
    order, fulfillment = bodies()
    rows = [
        ("Order, as the API server returns it", bytes_each(order, None)),
        ("Order, in the order controller's cache", bytes_each(order, Store)),
        ("Fulfillment, as the API server returns it", bytes_each(fulfillment, None)),
        ("Fulfillment, in the fulfillment controller's cache", bytes_each(fulfillment, Store)),
        ("Fulfillment, in the order controller's cache",
         bytes_each(fulfillment, lambda: Store(transform=order_mirror.fulfillment_as_read))),
        ("Kopf's memory of an object it has seen", kopf_bytes_each(ResourceMemories())),
        ("... with the controllers' ForgetfulMemories", kopf_bytes_each(ForgetfulMemories())),
    ]  # fmt: skip
    for what, size in rows:
        print(f"{what:55} {size:6} bytes")


if __name__ == "__main__":
    main()
