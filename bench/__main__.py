"""``python -m bench`` (``make bench``): run every benchmark and print one table.

Each benchmark module exposes ``main(argv) -> list[dict]``; every row names the
benchmark, the variant, and its measured numbers. Pass ``--quick`` for smaller runs.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys

BENCHMARKS = ("generate", "replay", "evaluate")
QUICK_ARGS = {"generate": ["--n", "16", "--max-new-tokens", "128", "--repeats", "1", "--hf-n", "8", "--hf-max-new-tokens", "64"], "replay": ["--n", "8"], "evaluate": []}


def _format_table(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller runs (for a smoke check)")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    for name in args.only or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        for row in module.main(QUICK_ARGS[name] if args.quick else []):
            rows.append({"benchmark": name, **row})
    print(f"\n== All benchmarks ({platform.processor() or platform.machine()}, {platform.python_version()})")
    print(_format_table(rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
