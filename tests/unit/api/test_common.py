"""What every model of the API offers."""

from __future__ import annotations

import datetime

import pytest
from pydantic import ValidationError

from orderflow.api.common import Condition, ConditionStatus, HistoryEntry
from orderflow.api.fulfillment import FulfillmentPhase, FulfillmentSpec, FulfillmentStatus
from orderflow.api.order import OrderSpec

T0 = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def test_a_copied_status_is_equal_and_shares_nothing_that_can_change() -> None:
    status = FulfillmentStatus(
        phase=FulfillmentPhase.PACKING,
        conditions=[Condition(type="Ready", status=ConditionStatus.FALSE, last_transition_time=T0, reason="Packing")],
        history=[HistoryEntry(time=T0, phase="Picking", reason="Started")],
    )
    copy = status.copied()
    assert copy == status
    copy.conditions[0].status = ConditionStatus.TRUE
    copy.history.append(HistoryEntry(time=T0, phase="Packing", reason="Picked"))
    copy.phase = FulfillmentPhase.SHIPPED
    assert status.conditions[0].status is ConditionStatus.FALSE
    assert len(status.history) == 1
    assert status.phase is FulfillmentPhase.PACKING


# -- text fields refuse control characters; people's names and scripts stay welcome ------------

ADDRESS = {"name": "Ada Lovelace", "street": "12 Square", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"}
ORDER = {"customerEmail": "ada@example.com", "items": [{"sku": "A", "quantity": 1}], "shippingAddress": ADDRESS}
FULFILLMENT = {**ORDER, "orderRef": {"name": "o1", "uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000001"}}
CONTROLS = ["\n", "\r", "\t", "\x1b[2J", "\x07", "\x7f", "\x9b", "\u2028", "\u2029", "\x00"]


def _with(spec: dict[str, object], path: str, value: str) -> dict[str, object]:
    *parents, last = path.split(".")
    out = {**spec}
    node = out
    for part in parents:
        node[part] = {**node[part]}  # type: ignore[dict-item]
        node = node[part]  # type: ignore[assignment]
    node[last] = value
    return out


ADDRESS_FIELDS = ["name", "street", "line2", "city", "region"]


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
@pytest.mark.parametrize("field", ADDRESS_FIELDS)
def test_an_address_line_with_a_control_character_is_refused(field: str, control: str) -> None:
    with pytest.raises(ValidationError, match=field):
        OrderSpec.model_validate(_with(ORDER, f"shippingAddress.{field}", f"12{control}Square"))


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
@pytest.mark.parametrize(
    "path", ["orderRef.name", "orderRef.uid", "simulateFailure.message", "shippingAddress.street", "customerEmail"]
)
def test_every_fulfillment_text_field_refuses_control_characters(path: str, control: str) -> None:
    spec = {**FULFILLMENT, "simulateFailure": {"step": "Picking", "message": "boom"}}
    with pytest.raises(ValidationError):
        FulfillmentSpec.model_validate(_with(spec, path, f"a{control}b@example.com"))


@pytest.mark.parametrize("email", ["ada\u200b@example.com", "ada@exam\u200dple.com", "ada@example.com\ufeff",
                                   "ada\u00a0x@example.com", "ada@example\u202e.com", "\x1b@example.com"])  # fmt: skip
def test_an_email_with_invisible_characters_is_refused(email: str) -> None:
    with pytest.raises(ValidationError, match=r"customer_email|customerEmail"):
        OrderSpec.model_validate({**ORDER, "customerEmail": email})


def test_names_and_addresses_in_any_script_are_still_taken() -> None:
    address = {
        "name": "Zoë O'Brien-Łukasiewicz",
        "street": "東京都千代田区丸の内1-1",
        # A zero-width non-joiner is part of Persian writing: only control characters are refused.
        "line2": "c/o Bāzār-e Tajrish — \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        "city": "São Paulo",
        "region": "Île-de-France",
        "postalCode": "75001",
        "country": "FR",
    }
    spec = OrderSpec.model_validate({**ORDER, "shippingAddress": address, "customerEmail": "zoë@exämple.de"})
    assert spec.shipping_address.line2 == address["line2"]
    FulfillmentSpec.model_validate({**FULFILLMENT, "orderRef": {"name": "order-1042.eu", "uid": "u-1"}})
