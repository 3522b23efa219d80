"""The client: the API server's errors raised typed, without the values they quoted; client-go's REST metrics."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY

from orderflow.runtime.client import Kube
from orderflow.runtime.pure.errors import Invalid


def value(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


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


def test_the_client_raises_api_errors_without_the_values_they_quoted() -> None:
    body = '{"reason": "Invalid", "message": "spec.shippingAddress.name: Invalid value: \\"Ada Lovelace\\": too long"}'
    with pytest.raises(Invalid) as raised:
        Kube(Answers(422, body)).patch("orders", "ns", "o1", {})
    assert "Ada" not in str(raised.value)
    assert raised.value.message == 'spec.shippingAddress.name: Invalid value: "[redacted]": too long'
