"""Reading a body as the contract's models, as far as this version can."""

from __future__ import annotations

from orderflow.api.common import ShippingAddress
from orderflow.api.fulfillment import FulfillmentPhase, FulfillmentStatus
from orderflow.runtime.pure.reading import generation_of, lenient, status_of

ADDRESS = {"name": "Ada", "street": "1 Way", "city": "London", "postalCode": "N1", "country": "GB"}


def test_what_can_be_read_is_read_and_what_cannot_is_the_default() -> None:
    address = lenient(ShippingAddress, ADDRESS, None)
    assert address is not None
    assert address.postal_code == "N1"
    assert lenient(ShippingAddress, {**ADDRESS, "postalCode": "!"}, None) is None
    assert lenient(ShippingAddress, {}, None) is None


def test_a_status_this_version_cannot_read_counts_as_not_reported() -> None:
    shipped = {"status": {"phase": "Shipped", "trackingNumber": "OF1"}}
    assert status_of(shipped, FulfillmentStatus).phase is FulfillmentPhase.SHIPPED
    assert status_of({"status": {"phase": "Teleported"}}, FulfillmentStatus) == FulfillmentStatus()
    assert status_of({}, FulfillmentStatus) == FulfillmentStatus()


def test_a_body_without_a_generation_is_at_its_first() -> None:
    assert generation_of({"metadata": {"generation": 4}}) == 4
    assert generation_of({"metadata": {}}) == 1
