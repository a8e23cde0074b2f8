"""``python -m bench`` (``make bench``): run every benchmark and print one table.

Each benchmark module exposes ``main(argv) -> list[dict]``; every row names the
benchmark, the variant, and its measured numbers. Pass ``--quick`` for smaller runs.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys

from bench.table import format_table

BENCHMARKS = ("generate", "generate_ray", "replay", "evaluate", "features")
QUICK_ARGS = {
    "generate": ["--n", "16", "--max-new-tokens", "128", "--repeats", "1", "--hf-n", "8", "--hf-max-new-tokens", "64"],
    "generate_ray": ["--n", "16", "--max-new-tokens", "64", "--repeats", "1"],
    "replay": ["--n", "8"],
    "evaluate": [],
    "features": ["--tasks", "60", "--d-model", "256", "--tokens", "40"],
}


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
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
