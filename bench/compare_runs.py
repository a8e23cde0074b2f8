"""Compare two data folders made with the same settings: do a refactor's outputs equal the old ones?

``python -m bench.compare_runs OLD_DATA_DIR NEW_DATA_DIR`` compares what both folders hold:
the parquet files (every column both have, times apart), every ``.npz`` array both have, and
the metadata JSON keys both have, leaving out timestamps, wall times, paths and run history.
Columns, arrays and keys only one side has are listed (a later version may add some); any
difference in what both have is printed and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.table import format_table

PARQUETS = ("phase0_1/validation_mbpp.parquet", "phase7_3/generations.parquet",
            "phase7_3/dataset_instruct_temp_0_0.parquet", "phase7_3/features/feature_scores.parquet")
NPZ_FOLDERS = ("phase7_3/activations/task_activations", "phase7_3/activations")
METADATA = ("phase7_3/generations_metadata.json", "phase7_3/activations/activations_metadata.json",
            "phase7_3/metadata.json")
# Values that differ between any two runs: clocks, durations, where the files were.
VOLATILE = ("time", "timestamp", "_at", "created", "path", "file", "dir", "history", "wall", "tokens_per_s",
            "source", "sha256", "version", "runs")


def _volatile(key: str) -> bool:
    return any(part in key.lower() for part in VOLATILE)


def compare_tables(old: Path, new: Path, ignore: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(differences, notes) of two parquet files over their shared, non-time columns."""
    a, b = pd.read_parquet(old), pd.read_parquet(new)
    shared = [c for c in a.columns if c in b.columns and not _volatile(c) and c not in ignore]
    notes = [f"ignored: {c}" for c in ignore if c in a.columns and c in b.columns]
    notes += [f"only in old: {c}" for c in a.columns if c not in b.columns]
    notes += [f"only in new: {c}" for c in b.columns if c not in a.columns]
    diffs = []
    if len(a) != len(b):
        return [f"{len(a)} rows vs {len(b)}"], notes
    for column in shared:
        left, right = a[column].map(_plain).tolist(), b[column].map(_plain).tolist()
        bad = [i for i, (x, y) in enumerate(zip(left, right)) if x != y and not (_nan(x) and _nan(y))]
        if bad:
            diffs.append(f"{column}: {len(bad)} rows differ (first row {bad[0]})")
    return diffs, notes


def _plain(value: object) -> object:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _nan(value: object) -> bool:
    return isinstance(value, float) and value != value or value is None or value is pd.NA


def compare_npz(old_dir: Path, new_dir: Path) -> tuple[list[str], list[str], int]:
    """(differences, notes, files compared) of every ``.npz`` both activation folders hold."""
    old_files = {p.name for p in old_dir.glob("*.npz")}
    new_files = {p.name for p in new_dir.glob("*.npz")}
    diffs = [f"file only in old: {n}" for n in sorted(old_files - new_files)]
    notes: set[str] = set()
    for name in sorted(old_files & new_files):
        with np.load(old_dir / name) as a, np.load(new_dir / name) as b:
            notes |= {f"array only in new: {k}" for k in b.files if k not in a.files}
            notes |= {f"array only in old: {k}" for k in a.files if k not in b.files}
            for key in (k for k in a.files if k in b.files):
                if not np.array_equal(a[key], b[key]):
                    diffs.append(f"{name}:{key} differs (max abs {np.max(np.abs(a[key] - b[key])):.3g})")
    return diffs, sorted(notes), len(old_files & new_files)


def compare_json(old: Path, new: Path, prefix: str = "") -> tuple[list[str], list[str]]:
    """(differences, notes) of two JSON files over their shared, non-volatile keys, recursively."""
    return _compare_values(json.loads(old.read_text()), json.loads(new.read_text()), prefix)


def _compare_values(a: object, b: object, prefix: str) -> tuple[list[str], list[str]]:
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return ([] if a == b else [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]), []
    diffs, notes = [], []
    for key in (k for k in a if not _volatile(k)):
        if key not in b:
            notes.append(f"only in old: {prefix}{key}")
            continue
        d, n = _compare_values(a[key], b[key], f"{prefix}{key}.")
        diffs += d
        notes += n
    return diffs, notes + [f"only in new: {prefix}{k}" for k in b if k not in a and not _volatile(k)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_runs", description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--ignore", action="append", default=[], metavar="COLUMN",
                        help="a parquet column whose change is intended (listed as ignored)")
    args = parser.parse_args(argv)
    results = [(rel, *compare_tables(args.old / rel, args.new / rel, tuple(args.ignore))) for rel in PARQUETS]
    for folder in NPZ_FOLDERS:
        diffs, notes, n = compare_npz(args.old / folder, args.new / folder)
        results.append((f"{folder}/*.npz ({n} files)", diffs, notes))
    results += [(rel, *compare_json(args.old / rel, args.new / rel)) for rel in METADATA]
    rows = [{"output": name, "equal": not diffs, "differences": len(diffs), "notes": "; ".join(notes)[:300]}
            for name, diffs, notes in results]
    all_diffs = [d if name.endswith("files)") else f"{name}: {d}" for name, diffs, _ in results for d in diffs]
    print(format_table(rows))
    for line in all_diffs:
        print("DIFF", line)
    return 1 if all_diffs else 0


if __name__ == "__main__":
    sys.exit(main())
