"""gen's modules import one way: the engine protocol imports nothing of gen, and no module circles back."""

from __future__ import annotations

import ast
from pathlib import Path

GEN = Path(__file__).resolve().parents[2] / "gen"


def gen_imports() -> dict[str, set[str]]:
    """``gen.x`` -> the ``gen`` modules it imports anywhere (inside functions too)."""
    graph = {}
    for path in GEN.glob("*.py"):
        name = f"gen.{path.stem}" if path.stem != "__init__" else "gen"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d.startswith("gen.")}
    return graph


def test_the_engine_protocol_imports_nothing_of_gen() -> None:
    assert gen_imports()["gen.engine"] == set()


def test_no_import_circle_in_gen() -> None:
    graph = gen_imports()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for dep in graph.get(module, ()):
            visit(dep, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
