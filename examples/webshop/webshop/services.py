"""Business logic. It knows nothing about tasks: tasks call it, it never calls tasks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal


@dataclass
class OrderRequest:
    sku: str
    quantity: int
    email: str
    unit_price: Decimal


class PaymentProviderDown(Exception):
    """The payment API answered 503; worth retrying later."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"payment provider unavailable, retry after {retry_after}s")
        self.retry_after = retry_after


_attempts: dict[str, int] = {}


def charge(order: OrderRequest) -> str:
    """Pretend to call a payment API that fails on the first attempt for each email."""
    _attempts[order.email] = _attempts.get(order.email, 0) + 1
    if _attempts[order.email] == 1:
        raise PaymentProviderDown(retry_after=0.5)
    total = order.unit_price * order.quantity
    return f"charged {total} EUR to {order.email} for {order.quantity} x {order.sku}"


def render_invoice_page(order: OrderRequest, page: int) -> None:
    time.sleep(0.05)
