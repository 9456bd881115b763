"""The tasks: a quick price quote the API waits for, and a slow report it does not.

A worker runs them: ``conveyor worker -A quotes.tasks:app`` (from examples/fastapi_app).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from conveyor import Conveyor, Task

app = Conveyor("quotes")  # ./conveyor.db, or CONVEYOR_BROKER_URL (redis://... for Redis)

PRICES = {"book": Decimal("12.50"), "lamp": Decimal("40.00"), "desk": Decimal("310.00")}


class UnknownProduct(LookupError):
    """Raised by a task; ``await result.aget()`` raises it again in the API process."""


@dataclass
class Quote:
    sku: str
    quantity: int
    total: Decimal


@app.task
def price_quote(sku: str, quantity: int) -> Quote:
    """A quick task: the API awaits its result within the request."""
    if sku not in PRICES:
        raise UnknownProduct(f"no product {sku!r}; try one of {', '.join(sorted(PRICES))}")
    return Quote(sku, quantity, PRICES[sku] * quantity)


@app.task(bind=True)
def build_report(self: Task, customer: str, pages: int, seconds_per_page: float = 0.01) -> str:
    """A slow task: the API answers at once with its id; clients poll or wait for it."""
    for page in range(1, pages + 1):
        if self.is_aborted():  # DELETE /reports/{id} revoked it: stop between pages
            return f"report for {customer}: cancelled after {page - 1} of {pages} pages"
        time.sleep(seconds_per_page)  # stands for rendering a page
        self.update_state(state="PROGRESS", meta={"current": page, "total": pages})
    return f"report for {customer}: {pages} pages"
