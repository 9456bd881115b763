"""The package stays typed (mypy --strict), linted (ruff), and layered (imports point down)."""

from __future__ import annotations

import ast
import importlib.util
import itertools
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
    paths = [p for p in ("src", "tests", "bench", "examples", "scripts") if (ROOT / p).exists()]
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


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


async def main() -> None:
    await fetch.adelay(1)  # line 38
    size: str = (await fetch.adelay("u")).get()  # line 39
    await add.adelay(1, "2")  # line 40
    fetch.delay("u").get().upper() + 1  # line 41
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
    assert failing == {23, 24, 25, 26, 27, 28, 29, 38, 39, 40, 41}, output
    assert 'Argument 1 to "delay" of "Task" has incompatible type "str"; expected "int"' in output


# -- layers ---------------------------------------------------------------------------------
# docs/internals.md draws these. A module imports only from its own layer or those below,
# and no import closes a cycle, counting imports inside functions (only those under
# ``if TYPE_CHECKING:`` are left out: they never run). A package's name places its
# submodules unless they are named themselves. ``current`` (the current app) sits with the
# data: signatures and schedules ask it for their app, and it imports only exceptions.

SRC = ROOT / "src" / "conveyor"

LAYERS = {
    1: """exceptions states ids utils backoff message serialization request signatures canvas
        stamps routing dispatch signals log redaction celery_settings beat.data beat.fields
        beat.describe beat.schedules beat.solar beat.entries current keys runtime_hooks options
        event_runs version pids""",
    2: """storage sqlite_file brokers backends coordination redis_connection redis_sentinel outage records
        beat.store beat.sqlite beat.redis redis_async_link async_stores grouped_sends
        redis_cluster cluster_stores""",
    3: """config config_django app builtin_tasks define task retries pydantic_tasks discovery messages
        publish_signals freeze plan result taskresult eagerresult groupresult joins chordcount control
        locks beat.periodic events aio_client registry inspection""",
    4: "workflow worker beat beat.scheduler beat.service beat.admin",
    5: "__init__ __main__ cli locate demo testing contrib dashboard",
}
LAYER_NAMES = {1: "data", 2: "storage", 3: "client", 4: "runtime", 5: "front ends"}

KNOWN_VIOLATIONS: set[tuple[str, str]] = set()
"""(importer, imported) pairs that still point up or close a cycle. Only ever remove one."""


def _layer_table() -> dict[str, int]:
    return {name: layer for layer, names in LAYERS.items() for name in names.split()}


def layer_of(module: str, table: dict[str, int]) -> int | None:
    """The layer of ``module`` (a name relative to the package), or of its closest package."""
    name = module
    while name not in table and "." in name:
        name = name.rpartition(".")[0]
    return table.get(name)


def _module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _under_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.ImportFrom | ast.Import, module: str, is_package: bool) -> list[str]:
    """Names (relative to the package) that an import statement may load."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1] if node.level > 1 else base
        target = [*base, *(node.module.split(".") if node.module else [])]
    else:
        target = (node.module or "").split(".")
    return [".".join([*target, alias.name]) for alias in node.names] + [".".join(target)]


def _imports(node: ast.AST, top_level_only: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements under ``node`` that can run (not under ``if TYPE_CHECKING:``);
    with ``top_level_only``, not those inside functions, which run only when called."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _under_type_checking(node):
            stack.extend(node.orelse)
            continue
        if top_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph(src: Path) -> dict[str, dict[str, int]]:
    """module -> {module it imports: line}, for the package rooted at ``src``.

    Names are relative to the package (``app``, ``brokers.redis``; ``__init__`` for the
    package itself). Importing ``a.b.c`` also runs ``a`` and ``a.b``, except from inside
    them: what that runs is what their ``__init__`` imports at its top level (a package
    that loads its names on first use, in a module ``__getattr__``, runs none of them), so
    those imports count as the importer's too.
    """
    package = src.name
    paths = {_module_name(path, src): path for path in sorted(src.rglob("*.py"))}
    trees = {module: ast.parse(path.read_text(), str(path)) for module, path in paths.items()}

    def targets(module: str, node: ast.Import | ast.ImportFrom) -> list[list[str]]:
        full = f"{package}.{module}" if module != "__init__" else package
        is_package = paths[module].name == "__init__.py"
        return [
            name.removeprefix(package + ".").split(".")
            for name in _imported(node, full, is_package)
            if name.startswith(package + ".")
        ]

    def on_import(module: str) -> set[str]:
        """What running package ``module``'s ``__init__`` imports (itself excluded)."""
        ran: set[str] = set()
        for node in _imports(trees[module], top_level_only=True):
            for parts in targets(module, node):
                for end in range(1, len(parts) + 1):
                    target = ".".join(parts[:end])
                    above = module == target or module.startswith(target + ".")
                    if target in paths and not above:
                        ran.add(target)
        return ran

    graph: dict[str, dict[str, int]] = {}
    for module in paths:
        edges: dict[str, int] = {}
        for node in _imports(trees[module], top_level_only=False):
            for parts in targets(module, node):
                for end in range(1, len(parts) + 1):
                    target = ".".join(parts[:end])
                    inside = module == target or module.startswith(target + ".")
                    if target not in paths or inside:
                        continue
                    passed_through = end < len(parts) and paths[target].name == "__init__.py"
                    if passed_through:
                        for ran in on_import(target):
                            if not (module == ran or module.startswith(ran + ".")):
                                edges.setdefault(ran, node.lineno)
                    else:
                        edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when there is none."""
    done: set[str] = set()
    for start in sorted(graph):
        path: list[str] = []
        on_path: set[str] = set()
        todo: list[tuple[str, bool]] = [(start, True)]
        while todo:
            node, entering = todo.pop()
            if not entering:
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            if node in on_path:
                return [*path[path.index(node) :], node]
            if node in done:
                continue
            path.append(node)
            on_path.add(node)
            todo.append((node, False))
            todo.extend((nxt, True) for nxt in sorted(graph.get(node, {}), reverse=True))
    return []


def _without_known(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {
        module: {t: line for t, line in edges.items() if (module, t) not in KNOWN_VIOLATIONS}
        for module, edges in graph.items()
    }


def test_every_module_has_a_layer() -> None:
    table = _layer_table()
    unplaced = sorted(m for m in import_graph(SRC) if layer_of(m, table) is None)
    assert not unplaced, f"add these modules to LAYERS in tests/test_quality.py: {unplaced}"


def test_imports_point_down_the_layers() -> None:
    table = _layer_table()
    upward = [
        f"{module} ({LAYER_NAMES[here]}) imports {target} ({LAYER_NAMES[there]}) at line {line}"
        for module, edges in _without_known(import_graph(SRC)).items()
        for target, line in edges.items()
        if (here := layer_of(module, table)) is not None
        and (there := layer_of(target, table)) is not None
        and there > here
    ]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    graph = _without_known(import_graph(SRC))
    cycle = find_cycle(graph)
    steps = [f"{a} imports {b} at line {graph[a][b]}" for a, b in itertools.pairwise(cycle)]
    assert not cycle, "an import cycle:\n" + "\n".join(steps)


def test_no_private_names_imported_across_modules() -> None:
    """A name with a leading underscore belongs to its module: one used elsewhere is public
    and loses the underscore."""
    found = [
        f"{path.relative_to(SRC)}:{node.lineno} imports {alias.name} from {node.module or '.'}"
        for path in sorted(SRC.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom)
        and (node.level or (node.module or "").startswith("conveyor"))
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_known_violations_are_still_there() -> None:
    """A fixed violation leaves the list, so it cannot come back unnoticed."""
    table, graph = _layer_table(), import_graph(SRC)
    fixed = sorted(pair for pair in KNOWN_VIOLATIONS if not _still_a_violation(graph, table, *pair))
    assert not fixed, f"fixed: remove from KNOWN_VIOLATIONS in tests/test_quality.py: {fixed}"


def _still_a_violation(
    graph: dict[str, dict[str, int]], table: dict[str, int], module: str, target: str
) -> bool:
    if target not in graph.get(module, {}):
        return False
    upward = (layer_of(target, table) or 0) > (layer_of(module, table) or 0)
    return upward or _reaches(graph, target, module)


def _reaches(graph: dict[str, dict[str, int]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        fresh = set(graph.get(node, {})) - seen
        seen |= fresh
        todo.extend(fresh)
    return False


def test_the_import_graph_counts_imports_inside_functions(tmp_path: Path) -> None:
    """The checks above can fail: a cycle through a function-level import is found, and an
    import under ``if TYPE_CHECKING:`` is not counted."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")
    (pkg / "sub" / "leaf.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub.leaf import x\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
    )
    (pkg / "sub" / "c.py").write_text("def g():\n    from ..a import f\n")
    graph = import_graph(pkg)
    assert graph["a"] == {"sub.leaf": 2}  # passing through sub runs what sub imports
    assert graph["b"] == {}
    assert find_cycle(graph) == []
    (pkg / "sub" / "leaf.py").write_text("from .c import g\n")
    assert find_cycle(import_graph(pkg)) == ["a", "sub.leaf", "sub.c", "a"]


def test_a_package_that_loads_names_on_first_use_runs_none_of_them(tmp_path: Path) -> None:
    """Importing ``lazy.data`` runs ``lazy/__init__.py``, whose ``__getattr__`` imports
    ``lazy.engine`` only when a name is asked for: the importer does not reach the engine,
    while a module that imports the package itself does."""
    pkg = tmp_path / "pkg"
    (pkg / "lazy").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "lazy" / "__init__.py").write_text(
        "def __getattr__(name):\n    from . import engine\n    return engine.Engine\n"
    )
    (pkg / "lazy" / "data.py").write_text("")
    (pkg / "lazy" / "engine.py").write_text("from ..low import x\n")
    (pkg / "low.py").write_text("from .lazy.data import y\n")
    (pkg / "front.py").write_text("from .lazy import Engine\n")
    graph = import_graph(pkg)
    assert graph["low"] == {"lazy.data": 1}
    assert graph["lazy"] == {"lazy.engine": 2}
    assert graph["front"] == {"lazy": 1}
    assert find_cycle(graph) == []
