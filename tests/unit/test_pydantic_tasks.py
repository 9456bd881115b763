"""``@app.task(pydantic=True)`` as Celery 5.5 has it: dict arguments validated into the
annotated models, returned models dumped to dicts, strict mode and validation context."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ValidationInfo, field_validator

from conveyor import Conveyor
from conveyor.testing import memory_app, run_until_empty


class Order(BaseModel):
    order_id: int
    sku: str


class Receipt(BaseModel):
    order_id: int
    total: float


class Tenant(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def known(cls, name: str, info: ValidationInfo) -> str:
        context = info.context or {}
        if name not in context.get("tenants", ()):
            raise ValueError(f"unknown tenant {name!r} for {context.get('celery_task_name')}")
        return name


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"pydantic-{uuid.uuid4().hex[:6]}")


def test_models_are_validated_and_results_dumped(app: Conveyor) -> None:
    seen: list[Any] = []

    @app.task(pydantic=True)
    def charge(order: Order, note: str | None = None) -> Receipt:
        seen.append(order)
        return Receipt(order_id=order.order_id, total=9.5)

    result = charge.delay({"order_id": 7, "sku": "tea"})
    run_until_empty(app)
    assert result.get(timeout=1) == {"order_id": 7, "total": 9.5}  # a dict, as in Celery
    assert seen == [Order(order_id=7, sku="tea")]


def test_optional_models_and_lax_or_strict_validation(app: Conveyor) -> None:
    @app.task(pydantic=True)
    def lax(order: Order | None = None) -> Receipt | None:
        return None if order is None else Receipt(order_id=order.order_id, total=1)

    @app.task(pydantic=True, pydantic_strict=True)
    def strict(order: Order) -> None: ...

    nothing, coerced = lax.delay(), lax.delay({"order_id": "8", "sku": "tea"})
    refused = strict.delay({"order_id": "8", "sku": "tea"})
    run_until_empty(app)
    assert nothing.get(timeout=1) is None
    assert coerced.get(timeout=1) == {"order_id": 8, "total": 1.0}
    with pytest.raises(Exception, match="ValidationError"):
        refused.get(timeout=1)


def test_validation_context_and_dump_options(app: Conveyor) -> None:
    @app.task(
        pydantic=True,
        pydantic_context={"tenants": ["acme"]},
        pydantic_dump_kwargs={"exclude": {"total"}},
    )
    def bill(tenant: Tenant, order: Order) -> Receipt:
        return Receipt(order_id=order.order_id, total=3.0)

    ok = bill.delay({"name": "acme"}, {"order_id": 1, "sku": "x"})
    unknown = bill.delay({"name": "globex"}, {"order_id": 2, "sku": "x"})
    run_until_empty(app)
    assert ok.get(timeout=1) == {"order_id": 1}
    with pytest.raises(Exception, match=r"unknown tenant 'globex' for .*bill"):
        unknown.get(timeout=1)


def test_eagerly_and_bound(app: Conveyor) -> None:
    app.conf.task_always_eager = True

    @app.task(bind=True, pydantic=True)
    def ship(self: Any, order: Order) -> Receipt:
        return Receipt(order_id=order.order_id, total=float(self.request.retries))

    assert ship.delay({"order_id": 3, "sku": "y"}).get() == {"order_id": 3, "total": 0.0}
