"""``stats`` sits below every stage: it imports numerical libraries and itself, nothing else."""

import ast
import sys
from pathlib import Path

STATS = Path(__file__).resolve().parents[2] / "stats"
ALLOWED = {"numpy", "scipy", "sklearn", "pandas", "threadpoolctl", "stats"}


def test_stats_imports_no_project_package():
    found = {}
    for path in STATS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED and top not in sys.stdlib_module_names:
                    found.setdefault(path.name, []).append(name)
    assert not found, f"stats must import only {sorted(ALLOWED)} and the standard library: {found}"
