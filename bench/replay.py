"""Replay throughput: one-by-one (batch 1, the baseline) against length-grouped batches, same tasks, one run.

``python -m bench.replay [--n 64] [--batch-sizes 1,8]``. The tokens come from our ``generate`` on
the demo model (kept and resumed under ``--work-dir``) or from ``--generations``. Every variant
replays the same first N tasks through ``replay.stage.run`` (model loading not timed); the last
columns compare each variant's activations with the first's (batching is exact up to float32
rounding). ``--feature-layers`` instead measures the compact feature-layer vectors file: the
best layers alone against best + every listed layer (a deeper forward pass).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from artifacts.device import DEVICE_CHOICES
from artifacts.files import read_json, write_json, write_parquet
from artifacts.layout import (ACTIVATIONS_SUBDIR, GENERATIONS_FILE, GENERATIONS_METADATA_FILE, TASK_ACTIVATIONS_SUBDIR,
                              Layout)
from artifacts.feature_list import find_feature_list, parse_layers
from replay.generations import read_generations
from replay.config import ReplayConfig
from replay.stage import ReplayResult, run as replay
from replay.store import activation_path, read_activations
from replay.verify import relative_error
from bench.table import format_table

REPO = Path(__file__).resolve().parents[1]
# Feature-list folders that hold no list: replay stores the --layers alone.
NO_LIST = Path(tempfile.gettempdir()) / "bench-replay-no-feature-list"
NO_FEATURE_LIST = {"phase2_10_dir": NO_LIST, "phase2_5_dir": NO_LIST}
# One variant: its name, its batch size and the feature-list folders replay is given.
Variant = tuple[str, int, dict[str, Path]]


def main(argv: list[str] | None = None) -> list[dict]:
    """Replay the same tasks with every variant (best of ``--repeat`` rounds); print and return the table."""
    parser = _parser()
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    layers = parse_layers(args.layers)
    variants = _variants(args, sizes, parser)
    generations = args.generations or _generate(args.work_dir, model=args.model, n=args.n, max_new_tokens=args.max_new_tokens)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        tmp = Path(tmp)
        subset = _first_tasks(generations, args.n, tmp / "input")
        tasks = read_generations(subset)
        # Warm-up (first-call kernel set-up and file cache), not timed.
        warm = _first_tasks(generations, 2, tmp / "warm")
        replay(ReplayConfig(generations_path=warm, output_dir=tmp / "warm", layers=args.layers, device=args.device,
                            **NO_FEATURE_LIST), show_progress=False)
        best_runs = _best_runs(args, variants, subset, tmp)
        rows = []
        for i, (name, size, _) in enumerate(variants):
            result, meta = best_runs[i], best_runs[i].metadata
            rows.append({"variant": name, "batch_size": size, "device": meta["device"], "dtype": meta["dtype"],
                         "forward_through": meta["forward_through_layer"],
                         "vector_layers": len(meta["feature_vectors"]["layers"]), "tasks": result.n_replayed,
                         "tokens": result.n_tokens_replayed, "wall_s": result.wall_time_s,
                         "tokens_per_s": result.tokens_per_s,
                         **_differences(tasks, layers, tmp / "variant_0", tmp / f"variant_{i}")})
        for row in rows:
            row["speedup"] = row["tokens_per_s"] / rows[0]["tokens_per_s"]
    load = os.getloadavg()
    print(f"\n== replay: {len(tasks)} tasks, layers {list(layers)}, best of {args.repeat} round(s), "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(format_table(rows))
    return rows


def _parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--n", type=int, default=64, help="tasks to replay (default 64)")
    parser.add_argument("--batch-sizes", default="1,8", help="comma-separated; the first is the baseline (default 1,8)")
    parser.add_argument("--layers", default="16,19", help="layers to store (default 16,19, Phase 2.10's best layers)")
    parser.add_argument("--model", default=str(Layout.default().demo_model), help="model for generate (default the demo model)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds, alternating the variants' order; each variant keeps its fastest round")
    parser.add_argument("--generations", type=Path, default=None, help="replay these generations instead of generating")
    parser.add_argument("--work-dir", type=Path, default=Layout.default().root / "bench" / "replay",
                        help="where generated tokens are kept between runs (default DATA_DIR/bench/replay)")
    parser.add_argument("--feature-layers", action="store_true",
                        help="compare best layers only with best + listed layers (the compact file's cost)")
    parser.add_argument("--feature-list-dir", type=Path, default=None,
                        help="folder with the top_20_features.json naming the listed layers "
                        "(default $PVA_PHASE2_10_DIR or DATA_DIR/phase2_10, then phase2_5)")
    return parser


def _variants(args: argparse.Namespace, sizes: list[int], parser: argparse.ArgumentParser) -> list[Variant]:
    """One variant per batch size, or (``--feature-layers``) best layers alone against best + listed layers."""
    if not args.feature_layers:
        return [("one-by-one" if size == 1 else "batched", size, NO_FEATURE_LIST) for size in sizes]
    layout = Layout.default()
    found = find_feature_list([args.feature_list_dir] if args.feature_list_dir else [layout.phase2_10, layout.phase2_5])
    if found is None:
        parser.error("--feature-layers: no top_20_features.json found (pass --feature-list-dir)")
    listed = {"phase2_10_dir": found.parent, "phase2_5_dir": NO_LIST}
    return [("best layers only", sizes[0], NO_FEATURE_LIST), ("+ listed layers", sizes[0], listed)]


def _best_runs(args: argparse.Namespace, variants: list[Variant], subset: Path, tmp: Path) -> dict[int, ReplayResult]:
    """Each variant's fastest replay of ``subset`` over ``--repeat`` rounds, into ``tmp/variant_<i>``."""
    best_runs: dict[int, ReplayResult] = {}
    for round_ in range(args.repeat):
        # Alternate the order so a load change on a shared machine does not favour one variant.
        order = list(enumerate(variants))
        for i, (_, size, dirs) in order if round_ % 2 == 0 else order[::-1]:
            config = ReplayConfig(generations_path=subset, output_dir=tmp / f"variant_{i}", layers=args.layers,
                                  device=args.device, batch_size=size, overwrite=True, **dirs)
            result = replay(config, show_progress=False)
            if i not in best_runs or result.wall_time_s < best_runs[i].wall_time_s:
                best_runs[i] = result
    return best_runs


def _generate(work: Path, *, model: str, n: int, max_new_tokens: int) -> Path:
    """Our ``generate`` on the first ``n`` validation problems (resumed when already there)."""
    data = ["--data-dir", str(work)]
    if not Layout(work).problems.is_file():
        _cli("split", *data)
    _cli("generate", *data, "--model", model, "--limit", str(n), "--max-new-tokens", str(max_new_tokens), "--enforce-eager")
    return Layout(work).phase7_3 / GENERATIONS_FILE


def _cli(*args: str) -> None:
    env = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", **os.environ}
    subprocess.run([sys.executable, "cli.py", *args], cwd=REPO, env=env, check=True)


def _first_tasks(generations: Path, n: int, dest: Path) -> Path:
    """A copy of the first ``n`` generations (by task id) with their metadata."""
    df = pd.read_parquet(generations).sort_values("task_id").head(n)
    write_parquet(dest / GENERATIONS_FILE, df)
    meta = read_json(generations.parent / GENERATIONS_METADATA_FILE)
    write_json(dest / GENERATIONS_METADATA_FILE, {**meta, "n_tasks": len(df)})
    return dest / GENERATIONS_FILE


def _differences(tasks, layers, base: Path, other: Path) -> dict[str, float]:
    """Largest relative difference of ``other``'s stored activations from ``base``'s."""
    arr_0 = sequence = 0.0
    for task in tasks:
        for layer in layers:
            a, b = (read_activations(activation_path(run / ACTIVATIONS_SUBDIR / TASK_ACTIVATIONS_SUBDIR,
                                                     task.task_id, layer)) for run in (base, other))
            arr_0 = max(arr_0, relative_error(b.arr_0, a.arr_0))
            sequence = max(sequence, relative_error(b.sequence.astype(np.float32), a.sequence.astype(np.float32)))
    return {"max_rel_diff_arr_0": arr_0, "max_rel_diff_sequence_f16": sequence}


if __name__ == "__main__":
    main(sys.argv[1:])
