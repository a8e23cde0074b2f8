"""The tree's shape: imports flow one way (no cycles), shared facts have one definition, functions stay short."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("artifacts", "problems", "stats", "gen", "replay", "evaluate", "features", "report", "demo", "pipeline",
            "bench")
STAGES = frozenset({"gen", "replay", "evaluate", "features", "report"})
BELOW_STAGES = frozenset({"artifacts", "problems", "stats"})
# Which top-level packages each may import: arrows point down the data flow only
# (cli -> pipeline -> demo -> stage packages -> problems/stats -> artifacts).
ALLOWED = {
    "artifacts": {"artifacts"},
    "stats": {"stats"},
    "problems": {"problems", "artifacts"},
    **{stage: {stage} | BELOW_STAGES for stage in STAGES},
    "demo": {"demo"} | STAGES | BELOW_STAGES,
    "pipeline": {"pipeline", "demo"} | STAGES | BELOW_STAGES,
    "cli": {"pipeline", "artifacts"},
    "bench": {"bench", "cli", "pipeline", "demo"} | STAGES | BELOW_STAGES,
}


def _modules() -> dict[str, Path]:
    mods = {"cli": REPO / "cli.py"}
    for package in (p for p in PACKAGES if (REPO / p).is_dir()):
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = path
    return mods


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules ``path`` imports anywhere (inside functions too)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # `from pkg import mod` names a module; `from mod import func` names its module.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_import_cycles():
    mods = _modules()
    graph = {name: _imports(path, name, set(mods)) for name, path in mods.items()}
    # Package __init__ modules only hold docstrings here, so an edge to a package is no cycle risk.
    graph = {n: {t for t in targets if mods[t].name != "__init__.py"} for n, targets in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_imports_follow_the_data_flow():
    """A stage package never imports another stage package; nothing imports upwards."""
    mods = _modules()
    wrong = []
    for name, path in mods.items():
        top = name.split(".")[0]
        for target in _imports(path, name, set(mods)):
            if target.split(".")[0] not in ALLOWED[top]:
                wrong.append(f"{path.relative_to(REPO)} imports {target}")
    assert not wrong, "imports against the data flow:\n" + "\n".join(sorted(wrong))


def test_every_top_level_package_has_a_place_in_the_graph():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(ALLOWED), f"packages without a rule in ALLOWED: {packages - set(ALLOWED)}"


def _sources(include_tests: bool) -> list[Path]:
    files = [REPO / "cli.py", *(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))]
    if include_tests:
        files += list((REPO / "tests").rglob("*.py"))
    return [f for f in files if f.resolve() != Path(__file__).resolve()]


def _where(pattern: str, *, include_tests: bool) -> set[str]:
    regex = re.compile(pattern)
    return {str(f.relative_to(REPO)) for f in _sources(include_tests) if regex.search(f.read_text())}


@pytest.mark.parametrize(
    ("what", "pattern", "home", "include_tests"),
    [
        ("the per-task activation file name", r"f[\"'][^\"'\n]*_layer_\{", "artifacts/layout.py", True),
        ("the library-version lookup", r"importlib[._]metadata|from importlib import metadata", "artifacts/versions.py", True),
        ("device detection", r"cuda\.is_available\(", "artifacts/device.py", False),
        ("the optional-JSON reader", r"def \w*(optional|maybe)\w*json", "artifacts/files.py", True),
    ],
)
def test_one_definition(what, pattern, home, include_tests):
    assert _where(pattern, include_tests=include_tests) == {home}, f"{what} must live in {home} only"


MAX_FUNCTION_LINES = 60  # stage code reads as named steps


def test_no_function_is_longer_than_a_screen():
    long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in _modules().values()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == [], long
