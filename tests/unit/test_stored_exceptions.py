"""Reading a stored failure rebuilds only exception classes already loaded in the reader.

A FAILURE record names its exception by module and qualified name. Whoever can write to the
result store writes those names, so reading one must never import the module (its
import-time code would run in every reader, as in Celery's CVE-2021-23727): an exception
whose class is not loaded comes back as a RemoteTaskError that names it.
"""

from __future__ import annotations

import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor, states
from conveyor.exceptions import ConveyorError, RemoteTaskError
from conveyor.records import ErrorRecord, TaskRecord
from conveyor.testing import memory_app


class Outer:
    class NestedError(Exception):
        """An exception class nested in a class of a loaded module."""


@pytest.fixture
def app() -> Iterator[Conveyor]:
    app = memory_app(f"stored-{uuid.uuid4().hex[:6]}")
    yield app
    app.close()


def store_failure(app: Conveyor, error: ErrorRecord) -> str:
    task_id = uuid.uuid4().hex
    record = TaskRecord(
        status=states.FAILURE, result=error.message, exception=error, traceback="Traceback: ..."
    )
    app.results.write(task_id, record)
    return task_id


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module on sys.path whose import writes a marker file, and that marker."""
    name = f"planted_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n\nclass Boom(Exception):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, marker


def test_a_stored_exception_does_not_import_its_module(
    app: Conveyor, planted: tuple[str, Path]
) -> None:
    name, marker = planted
    task_id = store_failure(app, ErrorRecord("Boom", name, "kaboom", ["kaboom"]))
    result = app.AsyncResult(task_id)

    with pytest.raises(RemoteTaskError) as caught:
        result.get(timeout=1)
    assert isinstance(result.result, RemoteTaskError)

    assert not marker.exists()
    assert name not in sys.modules
    error = caught.value
    assert isinstance(error, ConveyorError)
    assert (error.exc_module, error.exc_type, error.message) == (name, "Boom", "kaboom")
    assert str(error) == f"{name}.Boom: kaboom"
    assert error.traceback == "Traceback: ..."


def test_the_class_is_rebuilt_once_its_module_is_loaded_here(
    app: Conveyor, planted: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = planted
    module = __import__(name)
    monkeypatch.setitem(sys.modules, name, module)
    task_id = store_failure(app, ErrorRecord("Boom", name, "kaboom", ["kaboom"]))

    with pytest.raises(module.Boom, match="kaboom"):
        app.AsyncResult(task_id).get(timeout=1)


def test_a_module_getattr_does_not_run(app: Conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loaded module's ``__getattr__`` (a lazy import of a submodule) is not called."""
    calls: list[str] = []
    lazy = types.ModuleType("lazy_package")

    def module_getattr(attribute: str) -> object:
        calls.append(attribute)
        return ValueError

    lazy.__getattr__ = module_getattr  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "lazy_package", lazy)
    task_id = store_failure(app, ErrorRecord("submodule.Error", "lazy_package", "lazy"))

    with pytest.raises(RemoteTaskError, match="lazy_package.submodule.Error: lazy"):
        app.AsyncResult(task_id).get(timeout=1)
    assert calls == []


@pytest.mark.parametrize(
    ("module", "kind"),
    [
        ("os", "system"),  # a function, not an exception class
        ("os", "environ"),
        ("builtins", "object"),
        ("builtins", "SystemExit"),  # would stop the reading process
        ("builtins", "KeyboardInterrupt"),
        ("builtins", "GeneratorExit"),
        ("builtins", "ValueError.mro"),
        ("no_such_module_anywhere", "Error"),
        ("", ""),
    ],
)
def test_only_exception_classes_are_rebuilt(app: Conveyor, module: str, kind: str) -> None:
    task_id = store_failure(app, ErrorRecord(kind, module, "echo owned"))

    with pytest.raises(RemoteTaskError) as caught:
        app.AsyncResult(task_id).get(timeout=1)
    assert (caught.value.exc_module, caught.value.exc_type) == (module, kind)
    assert "echo owned" in str(caught.value)


def test_builtin_and_loaded_classes_come_back_as_themselves(app: Conveyor) -> None:
    value_error = store_failure(app, ErrorRecord("ValueError", "builtins", "bad", ["bad"]))
    with pytest.raises(ValueError, match="bad"):
        app.AsyncResult(value_error).get(timeout=1)

    key_error = store_failure(app, ErrorRecord("KeyError", "builtins", "'k'", ["k"]))
    with pytest.raises(KeyError) as caught:
        app.AsyncResult(key_error).get(timeout=1)
    assert caught.value.args == ("k",)

    nested = store_failure(app, ErrorRecord("Outer.NestedError", __name__, "deep", ["deep"]))
    with pytest.raises(Outer.NestedError, match="deep"):
        app.AsyncResult(nested).get(timeout=1)


def test_a_class_that_refuses_its_arguments_falls_back_to_the_wrapper(app: Conveyor) -> None:
    task_id = store_failure(
        app, ErrorRecord("UnicodeDecodeError", "builtins", "cannot decode", [1])
    )
    with pytest.raises(RemoteTaskError, match="builtins.UnicodeDecodeError: cannot decode"):
        app.AsyncResult(task_id).get(timeout=1)


def test_a_task_raising_a_class_of_a_loaded_module_gets_it_back(app: Conveyor) -> None:
    from conveyor.testing import run_until_empty

    @app.task
    def nested() -> None:
        raise Outer.NestedError("from the task")

    result = nested.delay()
    run_until_empty(app)
    with pytest.raises(Outer.NestedError, match="from the task"):
        result.get(timeout=1)
