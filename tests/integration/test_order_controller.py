"""The order controller and the fulfillment controller, two processes meeting only in the API."""

from __future__ import annotations

from typing import Any

import pytest

from orderflow.dev import manifests
from orderflow.dev.testing.plugin import REPO, Controllers, CustomResources, Kubectl, wait_for


def order(name: str, picking: float = 0.2, packing: float = 0.2, **spec: Any) -> dict[str, Any]:
    """An Order whose steps are short unless a test needs time to act in them."""
    return manifests.order(name, stepDurationSeconds={"picking": picking, "packing": packing}, **spec)


def patch(kubectl: Kubectl, ns: str, kind: str, name: str, spec: str) -> None:
    kubectl("patch", "-n", ns, kind, name, "--type", "merge", "-p", '{"spec":' + spec + "}")


def get(crs: CustomResources, plural: str, name: str) -> dict[str, Any]:
    return crs.get(plural, name)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def mirrored(crs: CustomResources, name: str) -> dict[str, Any]:
    return get(crs, "orders", name).get("status", {}).get("fulfillment") or {}


@pytest.fixture
def both(controllers: Controllers, namespace: str) -> Controllers:
    controllers.start("fulfillment", "--namespace", namespace)
    controllers.start("order", "--namespace", namespace, "--ack-timeout", "3")
    return controllers


def test_an_order_starts_its_fulfillment_and_both_finish(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "order.yaml"))
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "order/order-1042", "--timeout=90s")
    o = get(crs, "orders", "order-1042")
    f = get(crs, "fulfillments", "order-1042")
    assert o["status"]["phase"] == "Completed"
    assert f["status"]["phase"] == "Shipped"
    assert f["spec"]["orderRef"] == {"name": "order-1042", "uid": o["metadata"]["uid"]}
    assert f["metadata"]["labels"]["orderflow.dev/order"] == "order-1042"
    assert o["status"]["fulfillment"]["trackingNumber"] == f["status"]["trackingNumber"]
    assert condition(o, "SignalsAcknowledged")["status"] == "True"
    assert "order-controller.orderflow.dev/deletion-policy" in o["metadata"]["finalizers"]
    assert not f["metadata"].get("finalizers")  # the fulfillment controller needs none


def test_signals_on_the_order_reach_the_fulfillment(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("o1", picking=3, packing=3), "-n", namespace)
    wait_for(lambda: mirrored(crs, "o1"), lambda f: f.get("phase") == "Picking", what="Picking")

    patch(kubectl, namespace, "order", "o1", '{"paused": true}')
    paused = wait_for(
        lambda: get(crs, "orders", "o1"),
        lambda o: o["status"]["fulfillment"].get("paused") is True and condition(o, "Paused").get("status") == "True",
        what="the Order to show its Fulfillment paused",
    )
    assert condition(paused, "SignalsAcknowledged")["status"] == "True"
    assert get(crs, "fulfillments", "o1")["spec"]["paused"] is True

    moved = {**manifests.ADDRESS, "city": "Leeds", "postalCode": "LS1 1AA"}
    kubectl.apply(order("o1", picking=3, packing=3, shippingAddress=moved, paused=True), "-n", namespace)
    wait_for(
        lambda: get(crs, "fulfillments", "o1").get("status", {}).get("shippingAddress", {}),
        lambda a: a.get("city") == "Leeds",
        what="the new address to be taken by the Fulfillment",
    )

    patch(kubectl, namespace, "order", "o1", '{"cancelled": true}')
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Cancelled", "order/o1", "--timeout=60s")
    assert get(crs, "fulfillments", "o1")["status"]["phase"] == "Cancelled"


def test_direct_changes_to_the_fulfillment_show_on_the_order_and_stand(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("o2", picking=3, packing=3), "-n", namespace)
    wait_for(lambda: mirrored(crs, "o2"), lambda f: f.get("phase") == "Picking", what="Picking")

    patch(kubectl, namespace, "fulfillment", "o2", '{"paused": true}')  # by hand, not through the Order
    wait_for(lambda: mirrored(crs, "o2"), lambda f: f.get("paused") is True, what="the Order to mirror the pause")
    # The order controller did not fight it: the Fulfillment is still paused, its spec as the person left it.
    f = get(crs, "fulfillments", "o2")
    assert f["spec"]["paused"] is True
    assert f["status"]["paused"] is True
    o = get(crs, "orders", "o2")
    assert o["spec"]["paused"] is False
    assert o["status"]["signals"]["paused"] is False

    # The Order asks for something else (resume after it asked pause): that is sent.
    patch(kubectl, namespace, "order", "o2", '{"paused": true}')
    patch(kubectl, namespace, "order", "o2", '{"paused": false}')
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "order/o2", "--timeout=60s")

    kubectl.apply(order("o3", picking=3, packing=3), "-n", namespace)
    wait_for(lambda: mirrored(crs, "o3"), lambda f: f.get("phase") == "Picking", what="Picking")
    patch(kubectl, namespace, "fulfillment", "o3", '{"cancelled": true}')
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Cancelled", "order/o3", "--timeout=60s")


def test_a_stopped_fulfillment_controller_shows_as_unacknowledged_then_recovers(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    controllers.start("order", "--namespace", namespace, "--ack-timeout", "2")
    kubectl.apply(order("o4", picking=0, packing=0), "-n", namespace)
    waiting = wait_for(
        lambda: get(crs, "orders", "o4"),
        lambda o: condition(o, "SignalsAcknowledged").get("reason") == "NotAcknowledged",
        what="the unacknowledged start signal to show",
    )
    assert waiting["status"]["phase"] == "Fulfilling"
    assert "is the fulfillment controller running?" in condition(waiting, "SignalsAcknowledged")["message"]

    controllers.start("fulfillment", "--namespace", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "order/o4", "--timeout=60s")
    assert condition(get(crs, "orders", "o4"), "SignalsAcknowledged")["status"] == "True"


def test_an_invalid_order_is_reported_and_recovers_when_fixed(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    too_big = [{"sku": "BULK-1", "quantity": 800}, {"sku": "BULK-2", "quantity": 800}]
    kubectl.apply(order("o5", items=too_big), "-n", namespace)
    invalid = wait_for(
        lambda: get(crs, "orders", "o5"),
        lambda o: o.get("status", {}).get("phase") == "Invalid",
        what="the order to be reported invalid",
    )
    assert condition(invalid, "Stalled")["reason"] == "InvalidSpec"
    assert "1600 units" in condition(invalid, "Stalled")["message"]
    assert not crs.list("fulfillments")
    kubectl.apply(order("o5", items=[{"sku": "BULK-1", "quantity": 800}]), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "order/o5", "--timeout=60s")


@pytest.mark.parametrize(
    ("policy", "expect"),
    [("Cancel", "cancelled"), ("Orphan", "untouched"), ("Delete", "deleted")],
)
def test_deleting_an_order_follows_its_deletion_policy(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources, policy: str, expect: str
) -> None:
    kubectl.apply(order("o6", picking=30, packing=30, deletionPolicy=policy), "-n", namespace)
    wait_for(lambda: mirrored(crs, "o6"), lambda f: f.get("phase") == "Picking", what="Picking")
    kubectl("delete", "-n", namespace, "order", "o6", "--timeout=60s")
    if expect == "deleted":
        wait_for(
            lambda: [
                f["metadata"]["name"] for f in crs.list("fulfillments") if not f["metadata"].get("deletionTimestamp")
            ],
            lambda names: "o6" not in names,
            what="the Fulfillment to be deleted",
        )
        return
    f = wait_for(
        lambda: get(crs, "fulfillments", "o6"),
        lambda f: f.get("status", {}).get("phase") == ("Cancelled" if expect == "cancelled" else "Picking"),
        what=f"the Fulfillment to be {expect}",
    )
    assert f["spec"]["cancelled"] is (expect == "cancelled")


def test_a_fulfillment_deleted_by_hand_is_reported_on_the_order(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("o7", picking=30, packing=30), "-n", namespace)
    wait_for(lambda: mirrored(crs, "o7"), lambda f: f.get("phase") == "Picking", what="Picking")
    kubectl("delete", "-n", namespace, "fulfillment", "o7")
    stalled = wait_for(
        lambda: get(crs, "orders", "o7"),
        lambda o: condition(o, "Stalled").get("reason") == "FulfillmentMissing",
        what="the Order to report its Fulfillment missing",
    )
    assert "was deleted before it finished" in condition(stalled, "Stalled")["message"]
    assert not any(f["metadata"]["name"] == "o7" for f in crs.list("fulfillments"))  # not silently re-created
