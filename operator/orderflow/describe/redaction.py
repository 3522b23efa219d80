"""No address or e-mail address in a timeline detail: a summary shows the object's own data, the
timeline never does. No I/O.
"""

from __future__ import annotations

import re

from orderflow.api.common import ShippingAddress
from orderflow.describe.objects import FulfillmentObject, OrderObject, one_line, shipping_address


class Redactor:
    """Replaces the addresses and e-mail addresses of both objects in a timeline detail.

    The known values are replaced wherever they appear; what follows "shipped to" or "address
    changed to" (an address no object holds any more) is replaced too."""

    _TEMPLATES = re.compile(r"((?:shipped|address changed|address changes?) to )(?!\[address\])[^;(]*[^;(\s]", re.I)
    _RUN = re.compile(r"\[redacted\](?:[ ,]+(?:\[redacted\]|[A-Z]{2}\b))*")
    _EMAIL = re.compile(r"[^@\s;,()]+@[^@\s;,()]+\.[A-Za-z]{2,}")

    def __init__(self, order: OrderObject | None, fulfillment: FulfillmentObject | None) -> None:
        addresses: list[ShippingAddress | None] = []
        emails: list[str] = []
        if order is not None:
            addresses.append(shipping_address(order.spec.get("shippingAddress")))
            addresses.append(order.status.signals.shipping_address if order.status.signals else None)
            emails.append(str(order.spec.get("customerEmail") or ""))
        if fulfillment is not None:
            addresses.append(shipping_address(fulfillment.spec.get("shippingAddress")))
            addresses.append(fulfillment.status.shipping_address)
            emails.append(str(fulfillment.spec.get("customerEmail") or ""))
        values: set[str] = set()
        for a in addresses:
            if a is None:
                continue
            values.add(one_line(a))
            values.update(v for v in (a.name, a.street, a.line2, a.city, a.postal_code, a.region) if v)
        words = sorted((v.strip() for v in values if len(v.strip()) >= 2), key=len, reverse=True)
        self._values = [re.compile(r"(?<!\w)" + re.escape(v) + r"(?!\w)") for v in words]
        self._emails = [e for e in emails if e]

    def __call__(self, text: str) -> str:
        for email in self._emails:
            text = text.replace(email, "[email]")
        text = self._EMAIL.sub("[email]", text)
        for pattern in self._values:
            text = pattern.sub("[redacted]", text)
        text = self._RUN.sub("[address]", text)
        return self._TEMPLATES.sub(lambda m: m.group(1) + "[address]", text)
