"""The package stays typed (mypy --strict) and linted (ruff), as part of the test command."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed: pip install -e '.[test]'")
        pytest.skip(f"{module} is not installed: pip install -e '.[test]'")


def test_mypy_strict() -> None:
    _tool("mypy")
    run = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_lint_and_format() -> None:
    _tool("ruff")
    paths = [p for p in ("src", "tests", "bench", "examples") if (ROOT / p).exists()]
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *paths], cwd=ROOT, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_py_typed_marker_ships() -> None:
    assert (ROOT / "src" / "conveyor" / "py.typed").exists()


TYPING = ROOT / "tests" / "typing"

MUST_FAIL = """\
from typing import Any

from conveyor import Conveyor, Task, shared_task

app = Conveyor("must-fail", broker="memory://", backend="memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True)
def charge(self: Task[..., Any], order_id: int) -> str:
    return str(order_id)


@shared_task
def shout(text: str) -> str:
    return text


add.delay("a")  # line 23
add.delay(1)  # line 24
add(1, 2, 3)  # line 25
total: str = add.delay(1, 2).get()  # line 26
charge.delay("x")  # line 27
charge.delay(None, 5)  # line 28
shout.apply_async(("hi",)).get() + 1  # line 29
"""


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    """mypy with the project's settings (strict; ``conveyor`` read from src/)."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_mypy_task_api_types() -> None:
    """``assert_type`` checks of what ``@app.task`` and friends give a type checker."""
    _tool("mypy")
    run = _mypy(str(TYPING / "api_types.py"))
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_rejects_wrong_task_calls(tmp_path: Path) -> None:
    """Wrong arguments to ``delay`` and friends, and a wrong result type, are mypy errors."""
    _tool("mypy")
    snippet = tmp_path / "must_fail.py"
    snippet.write_text(MUST_FAIL)
    run = _mypy("--cache-dir", str(tmp_path / "mypy_cache"), str(snippet))
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    failing = {int(line.split(":")[1]) for line in output.splitlines() if ": error:" in line}
    assert failing == {23, 24, 25, 26, 27, 28, 29}, output
    assert 'Argument 1 to "delay" of "Task" has incompatible type "str"; expected "int"' in output
