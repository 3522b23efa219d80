"""The API server's error answers: typed, and without the values they quoted."""

from __future__ import annotations

from orderflow.runtime.pure.errors import redact_values


def test_values_quoted_in_api_errors_are_redacted_but_the_field_and_rule_stay() -> None:
    message = (
        'Fulfillment.orderflow.dev "o1" is invalid: [spec.customerEmail: Invalid value: "ada@example.com": '
        "spec.customerEmail in body should match '^[^@]+@[^@]+$', spec.shippingAddress.country: Unsupported "
        'value: "Narnia \\"North\\"": supported values: "GB", spec.items[0].quantity: Invalid value: 0: should be '
        'at least 1, spec: Invalid value: "object": cancelled is one-way]'
    )
    redacted = redact_values(message)
    assert "ada@example.com" not in redacted
    assert "Narnia" not in redacted
    assert 'spec.customerEmail: Invalid value: "[redacted]": spec.customerEmail in body should match' in redacted
    assert 'spec.shippingAddress.country: Unsupported value: "[redacted]": supported values: "GB"' in redacted
    assert "Invalid value: 0: should be at least 1" in redacted  # numbers are no personal data
    assert 'spec: Invalid value: "object": cancelled is one-way' in redacted  # CEL names the type
    assert 'Fulfillment.orderflow.dev "o1" is invalid' in redacted  # the object's name stays
