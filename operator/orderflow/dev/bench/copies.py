"""What copying a status costs: `.venv/bin/python -m orderflow.dev.bench.copies` times pydantic's
deep copy against ``Model.copied`` on the statuses of a finished Order and its shipped Fulfillment
(the ones ``cache_bytes`` builds), the copy each decision starts from."""

from __future__ import annotations

import functools
import timeit
from collections.abc import Callable

from orderflow.api.common import Model
from orderflow.api.fulfillment import FulfillmentStatus
from orderflow.api.order import OrderStatus
from orderflow.dev.bench.cache_bytes import bodies

COPIES = 5000


def microseconds(copy: Callable[[], object]) -> float:
    return timeit.timeit(copy, number=COPIES) / COPIES * 1e6


def main() -> None:
    order, fulfillment = bodies()
    statuses: list[tuple[str, Model]] = [
        ("Order status", OrderStatus.model_validate(order["status"])),
        ("Fulfillment status", FulfillmentStatus.model_validate(fulfillment["status"])),
    ]
    for what, status in statuses:
        assert status.copied() == status
        deep = microseconds(functools.partial(status.model_copy, deep=True))
        copied = microseconds(status.copied)
        print(f"{what:20} model_copy(deep=True) {deep:6.1f} µs   copied() {copied:6.1f} µs")


if __name__ == "__main__":
    main()
