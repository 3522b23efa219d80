"""Orders and Fulfillments as a user writes them, built from the API models so they cannot drift
from the schema: the demo's, the tests' and the benchmark's objects all come from here."""

from __future__ import annotations

from typing import Any

from orderflow.api import crdgen
from orderflow.api.common import API_VERSION


def crds() -> list[dict[str, Any]]:
    """The CRDs, generated from the models (what ``orderflow crds`` writes to crds/)."""
    return [crdgen.crd(spec) for spec in crdgen.KINDS]


def example_order() -> dict[str, Any]:
    """examples/order.yaml."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Order",
        "metadata": {"name": "order-1042"},
        "spec": {
            "customerEmail": "ada.lovelace@example.com",
            "items": [{"sku": "BOOK-ANALYTICAL-ENGINE", "quantity": 1}, {"sku": "PEN-FOUNTAIN-BLUE", "quantity": 2}],
            "shippingAddress": {
                "name": "Ada Lovelace",
                "street": "12 St James's Square",
                "city": "London",
                "postalCode": "SW1Y 4JH",
                "country": "GB",
            },
            "stepDurationSeconds": {"picking": 4, "packing": 4},
        },
    }


def example_fulfillment() -> dict[str, Any]:
    """examples/fulfillment.yaml."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Fulfillment",
        "metadata": {"name": "parcel-7"},
        "spec": {
            "customerEmail": "grace.hopper@example.com",
            "items": [{"sku": "COBOL-MANUAL", "quantity": 1}],
            "shippingAddress": {
                "name": "Grace Hopper",
                "street": "1 Navy Yard",
                "city": "Arlington",
                "region": "VA",
                "postalCode": "22202",
                "country": "US",
            },
            "started": False,
            "stepDurationSeconds": {"picking": 3, "packing": 3},
        },
    }
