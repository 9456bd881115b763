"""``Retry`` as Celery code reads it: ``is_eager``, ``sig`` (the next attempt), and an
``exc`` given as a string."""

from __future__ import annotations

import pickle
import uuid
from typing import Any

from conveyor import Retry, Task
from conveyor.testing import memory_app, run_until_empty


def test_retry_carries_is_eager_and_the_next_attempts_signature() -> None:
    app = memory_app(f"retry-{uuid.uuid4().hex[:6]}")
    seen: list[Retry] = []

    @app.task(bind=True, name="rc.fetch", max_retries=1)
    def fetch(self: Task, url: str) -> str:  # type: ignore[type-arg]
        if self.request.retries == 0:
            try:
                self.retry(args=(url + "?again",), countdown=30, queue="slow")
            except Retry as exc:
                seen.append(exc)
                raise
        return url

    fetch.delay("http://x")
    run_until_empty(app)
    worker_retry = seen.pop()
    assert worker_retry.is_eager is False
    assert worker_retry.sig.task == "rc.fetch" and worker_retry.sig.args == ("http://x?again",)
    assert worker_retry.sig.options["countdown"] == 30.0
    assert worker_retry.sig.options["queue"] == "slow"
    assert worker_retry.sig.options["retries"] == 1

    fetch.apply(("http://y",))
    assert seen.pop().is_eager is True


def test_retry_built_as_celery_code_builds_it() -> None:
    exc: Any = Retry("rate limited", "HTTPError('429')", 60, True, None)
    assert exc.exc is None and exc.excs == "HTTPError('429')"
    assert exc.is_eager is True and exc.when == 60 and str(exc) == "rate limited"
    assert str(Retry(exc=KeyError("k"), when=5)) == "Retry in 5s: KeyError('k')"
    again = pickle.loads(pickle.dumps(Retry(exc=ValueError("v"), when=5, options={"q": 1})))
    assert isinstance(again.exc, ValueError) and again.options == {"q": 1}
