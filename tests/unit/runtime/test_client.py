"""The client: merge patches, typed errors without the values they quoted, and client-go's REST metrics."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY

from orderflow.runtime.client import Kube
from orderflow.runtime.errors import Invalid, redact_values
from orderflow.runtime.mergepatch import merge_patch


def value(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def test_merge_patch_removes_sets_and_recurses() -> None:
    old = {"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "gone": True}
    new = {"a": 1, "b": {"x": 1}, "c": [1, 2], "d": None}
    assert merge_patch(old, new) == {"gone": None, "b": {"y": None}, "c": [1, 2], "d": None}


class Answers:
    """A pykube HTTPClient that answers every request with ``status`` (or raises ``error``)."""

    url = "https://10.96.0.1:443"

    def __init__(self, status: int = 200, body: str = "{}", error: Exception | None = None) -> None:
        self.status, self.body, self.error = status, body, error

    def request(self, method: str, **_: Any) -> requests.Response:
        if self.error:
            raise self.error
        response = requests.Response()
        response.status_code, response._content = self.status, self.body.encode()
        return response


def test_api_requests_are_counted_by_code_method_and_host() -> None:
    host = "10.96.0.1:443"

    def count(code: str, method: str) -> float:
        return value("rest_client_requests_total", code=code, method=method, host=host) or 0.0

    before = {k: count(*k) for k in (("200", "GET"), ("422", "PATCH"), ("<error>", "POST"))}
    latency_before = value("rest_client_request_duration_seconds_count", verb="GET", host=host) or 0.0
    Kube(Answers(200)).get("orders", "ns", "o1")
    with pytest.raises(Invalid):
        Kube(Answers(422, '{"reason": "Invalid", "message": "bad"}')).patch("orders", "ns", "o1", {})
    with pytest.raises(requests.ConnectionError):
        Kube(Answers(error=requests.ConnectionError("refused"))).create("orders", "ns", {})
    assert {k: count(*k) - v for k, v in before.items()} == {
        ("200", "GET"): 1,
        ("422", "PATCH"): 1,
        ("<error>", "POST"): 1,
    }
    assert (value("rest_client_request_duration_seconds_count", verb="GET", host=host) or 0) - latency_before == 1


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
    body = '{"reason": "Invalid", "message": "spec.shippingAddress.name: Invalid value: \\"Ada Lovelace\\": too long"}'
    with pytest.raises(Invalid) as raised:
        Kube(Answers(422, body)).patch("orders", "ns", "o1", {})
    assert "Ada" not in str(raised.value)
    assert raised.value.message == 'spec.shippingAddress.name: Invalid value: "[redacted]": too long'
