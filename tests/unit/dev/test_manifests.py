"""The manifests the demo, the tests and the benchmark send: the examples a person reads, and
builders that only make what the models accept, with what a test overrides applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from orderflow.api.common import API_VERSION
from orderflow.api.fulfillment import FulfillmentSpec
from orderflow.api.order import DeletionPolicy, OrderSpec
from orderflow.dev import manifests

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize(
    ("filename", "built"),
    [("order.yaml", manifests.example_order), ("fulfillment.yaml", manifests.example_fulfillment)],
)
def test_the_examples_a_person_reads_are_the_ones_the_demo_applies(filename: str, built: Any) -> None:
    assert yaml.safe_load((EXAMPLES / filename).read_text()) == built()


@pytest.mark.parametrize(
    ("build", "model"),
    [
        (manifests.order, OrderSpec),
        (manifests.fulfillment, FulfillmentSpec),
        (lambda name: manifests.example_order(), OrderSpec),
        (lambda name: manifests.example_fulfillment(), FulfillmentSpec),
    ],
)
def test_what_a_builder_makes_the_model_takes_as_written(build: Any, model: type[OrderSpec | FulfillmentSpec]) -> None:
    built = build("x")
    assert built["apiVersion"] == API_VERSION
    assert built["kind"] == model.__name__.removesuffix("Spec")
    taken = model.model_validate(built["spec"])
    assert taken.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True) == built["spec"]


def test_overrides_apply_and_the_rest_stays_as_built() -> None:
    moved = {**manifests.ADDRESS, "city": "Leeds", "postalCode": "LS1 1AA"}
    built = manifests.order(
        "o1",
        labels={"kind": "plain"},
        paused=True,
        deletionPolicy="Orphan",
        shippingAddress=moved,
        stepDurationSeconds={"picking": 3, "packing": 0.5},
    )
    assert built["metadata"] == {"name": "o1", "labels": {"kind": "plain"}}
    spec = built["spec"]
    assert spec["paused"] is True
    assert spec["deletionPolicy"] == "Orphan"
    assert spec["shippingAddress"]["city"] == "Leeds"
    assert spec["stepDurationSeconds"] == {"picking": 3, "packing": 0.5}
    assert spec["customerEmail"] == manifests.EMAIL
    assert spec["items"] == manifests.ITEMS
    parsed = OrderSpec.model_validate(spec)
    assert parsed.paused is True
    assert parsed.deletion_policy is DeletionPolicy.ORPHAN

    hand_made = manifests.fulfillment("f1", started=True, orderRef={"name": "o1", "uid": "u-1"})
    assert hand_made["spec"]["started"] is True
    assert hand_made["spec"]["orderRef"] == {"name": "o1", "uid": "u-1"}


def test_fields_left_out_stay_out_for_the_api_server_to_default() -> None:
    spec = manifests.order("o1")["spec"]
    assert set(spec) == {"customerEmail", "items", "shippingAddress"}
    assert "started" not in manifests.fulfillment("f1")["spec"]


def test_a_spec_the_model_refuses_is_refused_unless_the_test_asks_for_it() -> None:
    blank = {**manifests.ADDRESS, "street": " "}
    with pytest.raises(ValidationError, match=r"shippingAddress\.street"):
        manifests.order("o1", shippingAddress=blank)
    with pytest.raises(ValidationError, match=r"items\.0\.quantity"):
        manifests.fulfillment("f1", items=[{"sku": "A-1", "quantity": 0}])
    sent = manifests.order("o1", shippingAddress=blank, validate=False)
    assert sent["spec"]["shippingAddress"]["street"] == " "


@pytest.mark.parametrize(
    "override",
    [
        {"customer_email": "x@example.com"},  # Python's name: the API server would prune it
        {"stepDurations": {"picking": 0}},  # a misspelt field
        {"shippingAddress": {**manifests.ADDRESS, "zip": "1"}},  # an unknown field inside
        {"items": [{"sku": "A-1", "quantity": "2"}]},  # a string the model would turn into a number
    ],
    ids=["snake-case", "misspelt", "unknown-nested", "converted"],
)
def test_a_field_that_would_not_arrive_as_written_is_an_error(override: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError), match="OrderSpec"):
        manifests.order("o1", **override)


def test_each_object_is_its_own_a_test_may_change_it() -> None:
    first = manifests.order("a", validate=False)
    first["spec"]["shippingAddress"]["city"] = "Leeds"
    first["spec"]["items"].append({"sku": "PEN-1", "quantity": 1})
    assert manifests.order("b")["spec"]["shippingAddress"]["city"] == "London"
    assert manifests.order("b")["spec"]["items"] == [{"sku": "BOOK-1", "quantity": 1}]
