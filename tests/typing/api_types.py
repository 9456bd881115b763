"""What mypy infers for the task API. Checked by tests/test_quality.py (mypy --strict), not run.

Each ``assert_type`` fails type checking if the inferred type drifts; the lines that must
be rejected are checked separately (test_quality.MUST_FAIL).
"""

from __future__ import annotations

from typing import Any, assert_type

from conveyor import Conveyor, Task, shared_task
from conveyor.result import AnyResult, AsyncResult, EagerResult
from conveyor.task import AnyTask, AsyncTask, task

app = Conveyor("typing", broker="memory://", backend="memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True, max_retries=3)
def charge(self: AnyTask, order_id: int) -> str:
    return f"{self.name}:{order_id}"


@app.task(queue="mail")
def send_mail(to: str, *, subject: str = "") -> None:
    pass


@shared_task
def shout(text: str) -> str:
    return text.upper()


@shared_task(bind=True)
def shared_bound(self: Task[..., Any], n: int) -> list[int]:
    return [n]


@task
def legacy(n: int) -> float:
    return n / 2


@task(bind=True)
def legacy_bound(self: AnyTask, n: int) -> float:
    return n / 2


class Notifier(Task):  # type: ignore[type-arg]  # unparameterized, as user code writes it
    def notify(self) -> str:
        return "sent"


@app.task(base=Notifier)
def with_base(user_id: int) -> bool:
    return True


class ProcessImage(Task[..., Any]):
    def run(self, url: str) -> str:
        return url


process_image = app.register_task(ProcessImage())


@app.task
async def fetch(url: str, retries: int = 0) -> bytes:
    return url.encode()


@app.task(bind=True, soft_time_limit=5)
async def fetch_bound(self: AnyTask, url: str) -> dict[str, int]:
    return {url: len(self.request.id or "")}


@app.task(queue="io")
async def notify(user_id: int) -> None:
    pass


@shared_task
async def shared_fetch(url: str) -> bytes:
    return url.encode()


@shared_task(bind=True)
async def shared_fetch_bound(self: AnyTask, url: str) -> str:
    return url


def check() -> None:
    as_task: Task[[int, int], int] = add
    assert_type(as_task.delay(1, 2), AsyncResult[int])
    assert_type(add(1, 2), int)
    assert_type(add.delay(1, 2), AsyncResult[int])
    assert_type(add.delay(1, y=2).get(), int)
    assert_type(add.delay(1, 2).get(timeout=5), int)
    assert_type(add.apply_async((1, 2), countdown=5), AsyncResult[int])
    assert_type(add.apply((1, 2)), EagerResult[int])
    assert_type(add.apply((1, 2)).get(), int)
    assert_type(add.AsyncResult("id").get(), int)

    bound_as_task: Task[[int], str] = charge  # ``self`` is not part of the call
    assert_type(bound_as_task(5), str)
    assert_type(charge.delay(5), AsyncResult[str])
    assert_type(charge(5), str)

    assert_type(send_mail.delay("a@b.c", subject="hi"), AsyncResult[None])
    assert_type(shout.delay("hi").get(), str)
    assert_type(shared_bound.delay(3).get(), list[int])
    assert_type(with_base.delay(7).get(), bool)
    assert_type(legacy.delay(4).get(), float)
    assert_type(legacy_bound.delay(4).get(), float)

    assert_type(process_image, ProcessImage)
    assert_type(process_image.delay("http://x").get(), Any)
    annotated: AnyTask = add
    result: AnyResult = annotated.delay("anything", goes=True)
    assert_type(result.get(), Any)
    assert_type(Notifier().notify(), str)

    # ``async def`` tasks: a result of what the coroutine returns, not of a coroutine
    as_async: AsyncTask[[str, int], bytes] = fetch
    as_plain: Task[[str, int], bytes] = fetch
    assert_type(as_async.delay("u", 1), AsyncResult[bytes])
    assert_type(fetch.delay("u"), AsyncResult[bytes])
    assert_type(fetch.delay("u", retries=2).get(), bytes)
    assert_type(fetch.apply_async(("u",), countdown=1), AsyncResult[bytes])
    assert_type(fetch.apply(("u",)).get(), bytes)
    assert_type(fetch_bound.delay("u").get(), dict[str, int])
    assert_type(notify.delay(1), AsyncResult[None])
    assert_type(shared_fetch.delay("u").get(), bytes)
    assert_type(shared_fetch_bound.delay("u").get(), str)
    assert_type(as_plain.delay("u", 2), AsyncResult[bytes])


async def check_async() -> None:
    """The async client keeps the task's types (docs/async-client.md)."""
    assert_type(await add.adelay(1, 2), AsyncResult[int])
    assert_type(await add.aapply_async((1, 2), countdown=5), AsyncResult[int])
    assert_type(await (await add.adelay(1, y=2)).aget(timeout=5), int)
    assert_type(await (await add.adelay(1, 2)), int)
    assert_type(await add.AsyncResult("id").astate(), str)
    assert_type(await add.AsyncResult("id").aready(), bool)
    assert_type(await add.apply((1, 2)).aget(), int)
    assert_type(await app.asend_task("typing.add", (1, 2)), AnyResult)
    assert_type(await (await shout.adelay("hi")).aget(), str)

    assert_type(await fetch("u"), bytes)  # a direct call gives the coroutine
    assert_type(await fetch.adelay("u"), AsyncResult[bytes])
    assert_type(await (await fetch.adelay("u", 1)).aget(timeout=5), bytes)
    assert_type(await (await fetch_bound.aapply_async(("u",))).aget(), dict[str, int])
    assert_type(await (await fetch.adelay("u")), bytes)
    assert_type(await (await shared_fetch.adelay("u")).aget(), bytes)
    assert_type(await fetch_bound("u"), dict[str, int])
