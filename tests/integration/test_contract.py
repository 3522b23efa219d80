"""The contract as the API server enforces it: every rejection names the field and the reason."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
import yaml
from kubernetes.client.rest import ApiException

from orderflow.api import crdgen
from orderflow.api.common import API_VERSION
from orderflow.dev.testing.models import with_description
from orderflow.dev.testing.plugin import REPO, CustomResources, Kubectl

ADDRESS = {"name": "Ada Lovelace", "street": "12 Square", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"}
ORDER_SPEC: dict[str, Any] = {
    "customerEmail": "ada@example.com",
    "items": [{"sku": "BOOK-1", "quantity": 1}, {"sku": "PEN-2", "quantity": 2}],
    "shippingAddress": ADDRESS,
}
FULFILLMENT_SPEC: dict[str, Any] = {
    "orderRef": {"name": "o", "uid": "1234"},
    "items": [{"sku": "BOOK-1", "quantity": 1}],
    "customerEmail": "ada@example.com",
    "shippingAddress": ADDRESS,
}


def manifest(kind: str, spec: dict[str, Any], name: str = "x") -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def changed(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``spec`` with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    spec = copy.deepcopy(spec)
    *parents, last = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return spec


@dataclasses.dataclass(frozen=True)
class Bad:
    id: str
    kind: str
    spec: dict[str, Any]
    field: str
    reason: str
    says: str = ""


ORD, FUL = "Order", "Fulfillment"
INVALID = [
    Bad("order-no-items", ORD, changed(ORDER_SPEC, "items", []), "spec.items", "FieldValueInvalid", "should have at least 1"),
    Bad("order-items-missing", ORD, changed(ORDER_SPEC, "items", ...), "spec.items", "FieldValueRequired"),
    Bad("order-quantity-zero", ORD, changed(ORDER_SPEC, "items.0.quantity", 0), "spec.items[0].quantity", "FieldValueInvalid", "greater than or equal to 1"),
    Bad("order-quantity-negative", ORD, changed(ORDER_SPEC, "items.1.quantity", -3), "spec.items[1].quantity", "FieldValueInvalid"),
    Bad("order-quantity-huge", ORD, changed(ORDER_SPEC, "items.0.quantity", 10_001), "spec.items[0].quantity", "FieldValueInvalid", "less than or equal to 10000"),
    Bad("order-quantity-not-a-number", ORD, changed(ORDER_SPEC, "items.0.quantity", "two"), "spec.items[0].quantity", "FieldValueTypeInvalid"),
    Bad("order-duplicate-sku", ORD, changed(ORDER_SPEC, "items", [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]), "spec.items", "FieldValueInvalid", "each SKU may appear only once"),
    Bad("order-sku-empty", ORD, changed(ORDER_SPEC, "items.0.sku", ""), "spec.items[0].sku", "FieldValueInvalid"),
    Bad("order-sku-bad-chars", ORD, changed(ORDER_SPEC, "items.0.sku", "no spaces!"), "spec.items[0].sku", "FieldValueInvalid", "should match"),
    Bad("order-email-invalid", ORD, changed(ORDER_SPEC, "customerEmail", "not-an-email"), "spec.customerEmail", "FieldValueInvalid", "should match"),
    Bad("order-email-missing", ORD, changed(ORDER_SPEC, "customerEmail", ...), "spec.customerEmail", "FieldValueRequired"),
    Bad("order-country-unknown", ORD, changed(ORDER_SPEC, "shippingAddress.country", "XX"), "spec.shippingAddress.country", "FieldValueInvalid", "ISO 3166-1 alpha-2"),
    Bad("order-country-lowercase", ORD, changed(ORDER_SPEC, "shippingAddress.country", "gb"), "spec.shippingAddress.country", "FieldValueInvalid", "ISO 3166-1 alpha-2"),
    Bad("order-country-too-long", ORD, changed(ORDER_SPEC, "shippingAddress.country", "GBR"), "spec.shippingAddress.country", "FieldValueTooLong"),
    Bad("order-city-missing", ORD, changed(ORDER_SPEC, "shippingAddress.city", ...), "spec.shippingAddress.city", "FieldValueRequired"),
    Bad("order-postal-code-bad", ORD, changed(ORDER_SPEC, "shippingAddress.postalCode", "#!"), "spec.shippingAddress.postalCode", "FieldValueInvalid"),
    Bad("order-deletion-policy-unknown", ORD, changed(ORDER_SPEC, "deletionPolicy", "Shred"), "spec.deletionPolicy", "FieldValueNotSupported", "Cancel"),
    Bad("order-step-negative", ORD, changed(ORDER_SPEC, "stepDurationSeconds", {"picking": -1}), "spec.stepDurationSeconds.picking", "FieldValueInvalid"),
    Bad("order-paused-not-bool", ORD, changed(ORDER_SPEC, "paused", "yes"), "spec.paused", "FieldValueTypeInvalid"),
    Bad("order-no-spec", ORD, {}, "spec.customerEmail", "FieldValueRequired"),
    Bad("fulfillment-orderref-no-uid", FUL, changed(FULFILLMENT_SPEC, "orderRef", {"name": "o"}), "spec.orderRef.uid", "FieldValueRequired"),
    Bad("fulfillment-fail-at-shipped", FUL, changed(FULFILLMENT_SPEC, "simulateFailure", {"step": "Shipped"}), "spec.simulateFailure.step", "FieldValueNotSupported"),
    Bad("fulfillment-no-address", FUL, changed(FULFILLMENT_SPEC, "shippingAddress", ...), "spec.shippingAddress", "FieldValueRequired"),
    Bad("fulfillment-duplicate-sku", FUL, changed(FULFILLMENT_SPEC, "items", [{"sku": "A", "quantity": 1}] * 2), "spec.items", "FieldValueInvalid", "each SKU may appear only once"),
    # Control characters: no person needs them in these fields, and they forge lines and run
    # escape sequences where the text is shown. The message names the field and says why.
    Bad("order-street-line-break", ORD, changed(ORDER_SPEC, "shippingAddress.street", "12 Square\nFlat 3"), "spec.shippingAddress.street", "FieldValueInvalid", "must be one line of text"),
    Bad("order-name-escape", ORD, changed(ORDER_SPEC, "shippingAddress.name", "Ada\x1b[2J"), "spec.shippingAddress.name", "FieldValueInvalid", "must be one line of text"),
    Bad("order-city-carriage-return", ORD, changed(ORDER_SPEC, "shippingAddress.city", "London\r"), "spec.shippingAddress.city", "FieldValueInvalid", "must be one line of text"),
    Bad("order-line2-line-separator", ORD, changed(ORDER_SPEC, "shippingAddress.line2", "Flat 3\u2028Floor 2"), "spec.shippingAddress.line2", "FieldValueInvalid", "must be one line of text"),
    Bad("order-region-c1-csi", ORD, changed(ORDER_SPEC, "shippingAddress.region", "Kent\x9b2J"), "spec.shippingAddress.region", "FieldValueInvalid", "must be one line of text"),
    Bad("order-email-escape", ORD, changed(ORDER_SPEC, "customerEmail", "ada\x1b]0;x\x07@example.com"), "spec.customerEmail", "FieldValueInvalid", "should match"),
    Bad("order-email-zero-width", ORD, changed(ORDER_SPEC, "customerEmail", "ada\u200b@example.com"), "spec.customerEmail", "FieldValueInvalid", "should match"),
    Bad("order-email-no-break-space", ORD, changed(ORDER_SPEC, "customerEmail", "ada\u00a0x@example.com"), "spec.customerEmail", "FieldValueInvalid", "should match"),
    Bad("fulfillment-street-escape", FUL, changed(FULFILLMENT_SPEC, "shippingAddress.street", "\x1b]52;c;ZXZpbA==\x07"), "spec.shippingAddress.street", "FieldValueInvalid", "must be one line of text"),
    Bad("fulfillment-email-zero-width", FUL, changed(FULFILLMENT_SPEC, "customerEmail", "ada@exam\u200dple.com"), "spec.customerEmail", "FieldValueInvalid", "should match"),
    Bad("fulfillment-orderref-name-escape", FUL, changed(FULFILLMENT_SPEC, "orderRef.name", "o\x1b[31m"), "spec.orderRef.name", "FieldValueInvalid", "should match"),
    Bad("fulfillment-orderref-name-line-break", FUL, changed(FULFILLMENT_SPEC, "orderRef.name", "o\nCompleted"), "spec.orderRef.name", "FieldValueInvalid", "should match"),
    Bad("fulfillment-orderref-uid-escape", FUL, changed(FULFILLMENT_SPEC, "orderRef.uid", "1\x1b"), "spec.orderRef.uid", "FieldValueInvalid", "should match"),
    Bad("fulfillment-failure-message-line-break", FUL, changed(FULFILLMENT_SPEC, "simulateFailure", {"step": "Picking", "message": "boom\n12:00 Completed"}), "spec.simulateFailure.message", "FieldValueInvalid", "must be one line of text"),
]  # fmt: skip


def _causes(exc: ApiException) -> list[dict[str, str]]:
    body = json.loads(exc.body)
    causes: list[dict[str, str]] = body.get("details", {}).get("causes", [])
    return causes


@pytest.mark.parametrize("bad", INVALID, ids=lambda b: b.id)
def test_invalid_manifest_is_rejected_naming_field_and_reason(crs: CustomResources, bad: Bad) -> None:
    plural = "orders" if bad.kind == ORD else "fulfillments"
    with pytest.raises(ApiException) as caught:
        crs.create(plural, manifest(bad.kind, bad.spec))
    assert caught.value.status == 422
    causes = _causes(caught.value)
    assert any(c.get("field") == bad.field and c.get("reason") == bad.reason for c in causes), causes
    if bad.says:
        assert bad.says in json.loads(caught.value.body)["message"]


def test_valid_objects_round_trip_with_no_field_pruned(crs: CustomResources) -> None:
    order_spec = {
        **ORDER_SPEC,
        "shippingAddress": {**ADDRESS, "line2": "Flat 2", "region": "Westminster"},
        "paused": True,
        "deletionPolicy": "Orphan",
        "stepDurationSeconds": {"picking": 0.5, "packing": 0},
    }
    stored = crs.create("orders", manifest(ORD, order_spec, "full"))
    assert stored["spec"] == {**order_spec, "cancelled": False}  # the default filled in, nothing lost
    f_spec = {**FULFILLMENT_SPEC, "simulateFailure": {"step": "Packing", "message": "jam"}, "started": True}
    stored_f = crs.create("fulfillments", manifest(FUL, f_spec, "full"))
    assert stored_f["spec"] == {**f_spec, "paused": False, "cancelled": False}


def test_one_way_signals_and_the_order_reference_cannot_be_undone(crs: CustomResources) -> None:
    crs.create("fulfillments", manifest(FUL, {**FULFILLMENT_SPEC, "started": True, "cancelled": True}, "f"))
    for patch, field, says in [
        ({"cancelled": False}, "spec.cancelled", "a cancelled fulfillment stays cancelled"),
        ({"started": False}, "spec.started", "cannot be un-started"),
        ({"orderRef": {"name": "other", "uid": "9"}}, "spec.orderRef", "cannot be changed"),
    ]:
        with pytest.raises(ApiException) as caught:
            crs.patch("fulfillments", "f", {"spec": patch})
        assert caught.value.status == 422
        assert any(c.get("field") == field for c in _causes(caught.value)), _causes(caught.value)
        assert says in json.loads(caught.value.body)["message"]


def test_kubectl_shows_useful_columns_and_explanations(kubectl: Kubectl, namespace: str, crs: CustomResources) -> None:
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "order.yaml"))
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "fulfillment.yaml"))
    orders = kubectl("get", "orders", "-n", namespace).stdout
    assert orders.split("\n")[0].split() == [
        "NAME",
        "PHASE",
        "TARGET",
        "FULFILLMENT",
        "PROGRESS",
        "AGE",
        "READY",
        "MESSAGE",
    ]
    everything = kubectl("get", "orderflow", "-n", namespace).stdout
    assert "order.orderflow.dev/order-1042" in everything
    assert "fulfillment.orderflow.dev/parcel-7" in everything
    short = kubectl("get", "ful", "-n", namespace).stdout
    assert "parcel-7" in short
    explained = kubectl("explain", "order.spec.shippingAddress").stdout
    assert "ISO 3166-1 alpha-2 country code" in explained
    assert "Where to ship" in explained


def test_kubectl_patch_of_a_one_way_signal_is_refused_with_the_rule(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "fulfillment.yaml"))
    kubectl("patch", "-n", namespace, "fulfillment", "parcel-7", "--type", "merge", "-p", '{"spec":{"cancelled":true}}')
    undo = kubectl(
        "patch", "-n", namespace, "fulfillment", "parcel-7", "--type", "merge",
        "-p", '{"spec":{"cancelled":false}}', check=False,
    )  # fmt: skip
    assert undo.returncode != 0
    assert "spec.cancelled cannot be set back to false" in undo.stderr


@pytest.mark.parametrize("apply", [["apply"], ["apply", "--server-side"]], ids=["client-side", "server-side"])
def test_a_gitops_revert_of_a_cancel_is_refused_as_docs_gitops_says(
    kubectl: Kubectl, namespace: str, crds_installed: None, apply: list[str]
) -> None:
    """Git removes the `cancelled: true` a commit added: the field's default (false) comes back,
    and the one-way rule refuses it, under either kind of apply (docs/gitops.md)."""
    manifest = yaml.safe_load((REPO / "examples" / "order.yaml").read_text())
    kubectl(
        *apply,
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump({**manifest, "spec": {**manifest["spec"], "cancelled": True}}),
    )
    revert = kubectl(*apply, "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert revert.returncode != 0
    assert "a cancelled order stays cancelled" in revert.stderr
    name = manifest["metadata"]["name"]
    assert kubectl.json("get", "order", name, "-n", namespace)["spec"]["cancelled"] is True


def test_the_models_are_the_source_of_kubectl_explain(kubectl: Kubectl, crds_installed: None) -> None:
    order = next(k for k in crdgen.KINDS if k.kind == "Order")
    edited = dataclasses.replace(
        order, spec=with_description(order.spec, "customer_email", "Receipts and shipping notices go here.")
    )
    try:
        kubectl.apply(yaml.safe_load(crdgen.render(edited)))
        kubectl.json("get", "crd", order.name)  # served at once; explain may lag the OpenAPI cache
        from orderflow.dev.testing.plugin import wait_for

        wait_for(
            lambda: kubectl("explain", "order.spec.customerEmail").stdout,
            lambda text: "Receipts and shipping notices go here." in text,
            timeout=30,
            what="kubectl explain to show the regenerated description",
        )
    finally:
        kubectl("apply", "-f", str(REPO / "crds" / order.filename))


def test_names_and_addresses_in_any_script_are_taken(crs: CustomResources) -> None:
    """The rules against control characters leave people's own writing alone, in RE2 as in pydantic."""
    address = {
        "name": "Zoë O'Brien-Łukasiewicz",
        "street": "東京都千代田区丸の内1-1",
        "line2": "c/o Bāzār — \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # a zero-width non-joiner is part of Persian writing
        "city": "São Paulo",
        "region": "Île-de-France",
        "postalCode": "75001",
        "country": "FR",
    }
    spec = {**ORDER_SPEC, "shippingAddress": address, "customerEmail": "zoë@exämple.de"}
    created = crs.create("orders", manifest(ORD, spec, name="any-script"))
    assert created["spec"]["shippingAddress"] == address
