"""Orders and Fulfillments as a user writes them, built from the API models so they cannot drift
from the schema: the demo's, the tests' and the benchmark's objects all come from here.

``order(name, **spec)`` and ``fulfillment(name, **spec)`` start from a valid spec and take any
field by its wire name (``paused=True``, ``stepDurationSeconds={"picking": 0, "packing": 0}``).
The spec then goes through OrderSpec or FulfillmentSpec and out as the model writes it, so a test
cannot send by accident what the API server refuses, and a misspelt field is an error here, not a
field the API server quietly prunes (the models ignore unknown fields, as the API server does). A
test of the API server's own rejections says so: ``validate=False`` sends the spec as given.

The objects hold only what was written: fields left out stay out, for the API server to default,
as it does a person's YAML. ``example_order()`` and ``example_fulfillment()`` are examples/*.yaml
(a unit test holds them equal), so the demo needs no checkout.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from orderflow.api import crdgen
from orderflow.api import fulfillment as fulfillment_api
from orderflow.api import order as order_api
from orderflow.api.common import API_VERSION, Model
from orderflow.api.fulfillment import FulfillmentSpec
from orderflow.api.order import OrderSpec

# What every built object has unless a test says otherwise: one book, to Ada Lovelace.
EMAIL = "ada@example.com"
ADDRESS: dict[str, str] = {
    "name": "Ada Lovelace",
    "street": "12 Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}
ITEMS: list[dict[str, Any]] = [{"sku": "BOOK-1", "quantity": 1}]


def crds() -> list[dict[str, Any]]:
    """The CRDs, generated from the models (what ``orderflow crds`` writes to crds/)."""
    return [crdgen.crd(spec) for spec in crdgen.KINDS]


def order(name: str, *, labels: Mapping[str, str] | None = None, validate: bool = True, **spec: Any) -> dict[str, Any]:
    """An Order: one book to Ada Lovelace, with ``spec`` setting or replacing fields by wire name.
    The step durations are the controller's unless ``stepDurationSeconds`` is given."""
    base = {"customerEmail": EMAIL, "items": ITEMS, "shippingAddress": ADDRESS}
    return _manifest(order_api.KIND, name, labels, _spec(OrderSpec, {**base, **spec}, validate))


def fulfillment(
    name: str, *, labels: Mapping[str, str] | None = None, validate: bool = True, **spec: Any
) -> dict[str, Any]:
    """A Fulfillment made by hand (no orderRef; not started unless ``started=True``): one book to
    Ada Lovelace, with ``spec`` setting or replacing fields by wire name."""
    base = {"customerEmail": EMAIL, "items": ITEMS, "shippingAddress": ADDRESS}
    return _manifest(fulfillment_api.KIND, name, labels, _spec(FulfillmentSpec, {**base, **spec}, validate))


def example_order() -> dict[str, Any]:
    """examples/order.yaml."""
    return order(
        "order-1042",
        customerEmail="ada.lovelace@example.com",
        items=[{"sku": "BOOK-ANALYTICAL-ENGINE", "quantity": 1}, {"sku": "PEN-FOUNTAIN-BLUE", "quantity": 2}],
        shippingAddress={
            "name": "Ada Lovelace",
            "street": "12 St James's Square",
            "city": "London",
            "postalCode": "SW1Y 4JH",
            "country": "GB",
        },
        stepDurationSeconds={"picking": 4, "packing": 4},
    )


def example_fulfillment() -> dict[str, Any]:
    """examples/fulfillment.yaml."""
    return fulfillment(
        "parcel-7",
        customerEmail="grace.hopper@example.com",
        items=[{"sku": "COBOL-MANUAL", "quantity": 1}],
        shippingAddress={
            "name": "Grace Hopper",
            "street": "1 Navy Yard",
            "city": "Arlington",
            "region": "VA",
            "postalCode": "22202",
            "country": "US",
        },
        started=False,
        stepDurationSeconds={"picking": 3, "packing": 3},
    )


def wire_names(model: type[Model]) -> set[str]:
    """The spec fields as the API server knows them: customerEmail, not customer_email."""
    return {field.alias or name for name, field in model.model_fields.items()}


def _spec(model: type[Model], spec: dict[str, Any], validate: bool) -> dict[str, Any]:
    if not validate:
        return copy.deepcopy(spec)  # as given; and never the shared defaults, which a test may change
    unknown = sorted(set(spec) - wire_names(model))
    if unknown:
        raise TypeError(
            f"{model.__name__} has no field {', '.join(unknown)}; its fields, by wire name: "
            f"{', '.join(sorted(wire_names(model)))}"
        )
    # Raises pydantic's ValidationError, naming the field, for what the schema refuses.
    wire = model.model_validate(spec).model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
    if wire != spec:  # something the model dropped (an unknown nested field) or converted ("2" for 2)
        raise ValueError(f"{model.__name__} does not take this spec as written:\n  given {spec}\n  taken {wire}")
    return wire


def _manifest(kind: str, name: str, labels: Mapping[str, str] | None, spec: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}
