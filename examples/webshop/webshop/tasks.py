"""Tasks are the interface to the services: fetch, call the service, handle retries."""

from __future__ import annotations

from typing import Any

from conveyor import Conveyor, Task, get_task_logger

from .services import OrderRequest, PaymentProviderDown

app = Conveyor("webshop")  # ./conveyor.db, or CONVEYOR_BROKER_URL
logger = get_task_logger(__name__)


@app.task(bind=True, max_retries=5)
def place_order(self: Task, order: OrderRequest) -> str:
    """``order`` arrives as an OrderRequest (its Decimal price too), not a dict."""
    from . import services

    try:
        receipt = services.charge(order)
    except PaymentProviderDown as exc:
        logger.warning("payment provider down: %s", exc)
        raise self.retry(exc=exc, countdown=exc.retry_after) from None
    invoice.delay(order, pages=5)
    return receipt


class RenderInvoice(Task):
    """A class-based task: helper methods stay private to the task."""

    name = "webshop.tasks.invoice"

    def run(self, order: OrderRequest, pages: int) -> dict[str, Any]:
        for page in range(1, pages + 1):
            self.render(order, page)
            self.update_state(state="PROGRESS", meta={"current": page, "total": pages})
        return {"email": order.email, "pages": pages}

    def render(self, order: OrderRequest, page: int) -> None:
        from . import services

        services.render_invoice_page(order, page)


invoice = app.register_task(RenderInvoice())
