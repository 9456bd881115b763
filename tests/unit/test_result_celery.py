"""Result handles as plain data, in Celery's shapes: ``as_tuple()``, ``as_list()`` and
``result_from_tuple`` (also from the JSON a task stored, and Celery's older form)."""

from __future__ import annotations

import json
import uuid

from conveyor import Conveyor, GroupResult
from conveyor.result import result_from_tuple
from conveyor.testing import memory_app


def make_app() -> Conveyor:
    return memory_app(f"results-{uuid.uuid4().hex[:6]}")


def test_as_tuple_has_celerys_shape_and_comes_back_from_json() -> None:
    app = make_app()
    parent = app.AsyncResult("parent-1")
    members = [app.AsyncResult(f"member-{i}") for i in range(2)]
    batch = GroupResult("group-1", members, parent=parent, app=app)
    (group_id, parent_tuple), member_tuples = batch.as_tuple()
    assert group_id == "group-1" and parent_tuple == (("parent-1", None), None)
    assert member_tuples == [(("member-0", None), None), (("member-1", None), None)]
    again = result_from_tuple(json.loads(json.dumps(batch.as_tuple())), app)
    assert isinstance(again, GroupResult) and again == batch and again.parent == parent


def test_as_list_names_the_result_then_its_parents() -> None:
    app = make_app()
    child = app.AsyncResult("c")
    child.parent = app.AsyncResult("b")
    child.parent.parent = app.AsyncResult("a")
    assert child.as_list() == ["c", "b", "a"]


def test_result_from_tuple_reads_celerys_older_form_and_results() -> None:
    app = make_app()
    legacy = result_from_tuple(["old-group", []], app)
    assert legacy.id == "old-group" and isinstance(legacy, GroupResult)
    handle = app.AsyncResult("x")
    assert result_from_tuple(handle, app) is handle


def test_an_empty_group_result_is_still_a_result() -> None:
    from conveyor import group

    app = make_app()
    result = group([], app=app).apply_async()
    assert result and len(result) == 0 and result.results == []


def test_results_built_as_celery_code_builds_them() -> None:
    from conveyor import ResultSet, states
    from conveyor.result import EagerResult

    eager: EagerResult[int] = EagerResult("x", 42, states.SUCCESS, None, "proj.answer")
    assert eager.name == "proj.answer" and eager.get() == 42
    assert EagerResult("y", 1, states.SUCCESS, name="proj.one").name == "proj.one"
    app, other = make_app(), make_app()
    results = ResultSet([app.AsyncResult("id1")])
    assert results.app is app
    results.app = other
    assert results.app is other
