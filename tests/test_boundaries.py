"""The package boundaries of docs/ARCHITECTURE.md, checked on the source and on real imports.

web (app/api, app/web, app/main) → pipeline core (app/pipeline, app/db, …) ← workers; engines
(models/) know none of them; the CLI (app/cli) is the one module that wires everything.
"""

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "workers", "models")
WEB = ("app.api", "app.web", "app.main")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _all_imports(path: Path) -> Iterator[str]:
    """Every module `path` names in an import, wherever the import stands (in a function or
    under TYPE_CHECKING too: a lazy import still ties two modules together)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {target for target in _all_imports(path) if target in modules} - {name}
        for name, path in modules.items()
    }


def test_engines_import_nothing_of_the_service() -> None:
    offenders = [
        f"{name} imports {target}"
        for name, path in _modules().items()
        if name.startswith("models")
        for target in _all_imports(path)
        if _within(target, ("app", "workers"))
    ]
    assert not offenders


def test_only_the_cli_imports_the_workers_from_app() -> None:
    offenders = [
        f"{name} imports {target}"
        for name, path in _modules().items()
        if name.startswith("app") and not _within(name, ("app.cli",))
        for target in _all_imports(path)
        if _within(target, ("workers",))
    ]
    assert not offenders


def test_the_core_and_the_workers_import_nothing_of_the_web() -> None:
    offenders = [
        f"{name} imports {target}"
        for name, path in _modules().items()
        if not _within(name, (*WEB, "app.cli"))
        for target in _all_imports(path)
        if _within(target, (*WEB, "fastapi", "starlette", "uvicorn"))
    ]
    assert not offenders


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # A package's __init__ importing its own submodules is not a cycle worth reporting.
    real = [c for c in cycles if not all(_within(m, (c[0],)) or _within(c[0], (m,)) for m in c)]
    assert not real, "\n".join(" → ".join(c) for c in real)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", ["import app.main", "from app.main import create_app"])
def test_the_web_process_loads_no_worker_module(statement: str) -> None:
    assert not {m for m in _loaded_after(statement) if _within(m, ("workers",))}


def test_the_worker_tasks_load_no_web_framework() -> None:
    loaded = _loaded_after(
        "import workers.tasks.ingest, workers.tasks.stages, workers.tasks.evaluate"
    )
    assert not {m for m in loaded if _within(m, ("fastapi", "starlette", "uvicorn", *WEB))}


def test_the_checks_see_a_violation() -> None:
    """The source checks are not vacuous: the graph has edges and the walker finds imports."""
    graph = _graph()
    assert "app.pipeline.run_config" in graph["app.db.tables"]
    assert "app.pipeline.fs_transport" in graph["app.pipeline.celery_app"]  # from pkg import mod
    assert "models.base" in set(_all_imports(ROOT / "models" / "tesseract.py"))
