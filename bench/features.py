"""Time and peak memory of the whole features stage on a Gemma-2-2B-sized synthetic run.

``python -m bench.features [--work-dir DIR] [--tasks 388] [--d-model 2304] [--token-vectors 2048] ...``

Writes once per ``--work-dir`` (reused: they take minutes) what a real run reads, in the real
formats: the evaluated dataset, ``feature_layer_vectors.npz`` (both sites of every listed
layer), float16 ``task_activations`` sequences of about ``--tokens`` tokens at the best layers,
one GemmaScope-layout ``params.npz`` per listed layer (random unit columns, threshold set for
about ``--l0`` active latents: sparsity decides the decoding cost) and the feature list
(``$PVA_PHASE2_10_DIR``'s when there is one, else 40 features over ``--layers`` layers). Vectors
are anisotropic with a weak outcome direction, so the probes meet realistic fits. Then it runs
``python cli.py features`` with ``--sae LAYER=PATH`` per layer in a child process and reports
its wall time, peak RSS (``RUSAGE_CHILDREN``), the stage's step times and the load average.
The SAE files were just written, so they come from the page cache.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from artifacts.feature_list import read_feature_list
from artifacts.files import read_json, write_json, write_npz, write_parquet
from artifacts.layout import PHASE2_10_ENV, activation_file_name
from artifacts.schema import features as fm
from bench.table import format_table

ROOT = Path(__file__).resolve().parents[1]
BEST_LAYERS = (16, 19)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pva-bench-features"))
    parser.add_argument("--tasks", type=int, default=388)
    parser.add_argument("--layers", type=int, default=14, help="without Phase 2.10's list: layers 10..")
    parser.add_argument("--d-model", type=int, default=2304)
    parser.add_argument("--d-sae", type=int, default=16384)
    parser.add_argument("--tokens", type=int, default=400, help="mean tokens per task in the sequence arrays")
    parser.add_argument("--token-vectors", type=int, default=2048, help="the stage's --token-vectors")
    parser.add_argument("--l0", type=float, default=70)
    parser.add_argument("--pass-rate", type=float, default=0.35)
    parser.add_argument("--compare", action="store_true",
                        help="also --compare-activations: the same run as its own comparison (a base-beside-instruct cost)")
    args = parser.parse_args(argv)
    data = args.work_dir / f"t{args.tasks}_d{args.d_model}_s{args.d_sae}_k{args.tokens}"
    list_dir = _feature_list(data, args)
    saes = _write_inputs(data, list_dir, args)
    return _run_stage(data, list_dir, saes, args)


def _feature_list(data: Path, args: argparse.Namespace) -> Path:
    """The folder of Phase 2.10's list when ``$PVA_PHASE2_10_DIR`` holds it, else of 40 synthetic features."""
    shared = os.environ.get(PHASE2_10_ENV)
    if shared and (Path(shared) / "top_20_features.json").is_file():
        return Path(shared)
    rng = np.random.default_rng(0)
    layers = list(range(10, 10 + args.layers))
    entries = [{"layer": layers[i % len(layers)], "feature_idx": int(rng.integers(args.d_sae)), "t_statistic": 5.0}
               for i in range(40)]
    write_json(data / "phase2_10" / "top_20_features.json", {"correct": entries[:20], "incorrect": entries[20:]})
    return data / "phase2_10"


def _write_inputs(data: Path, list_dir: Path, args: argparse.Namespace) -> dict[int, Path]:
    """Dataset, vectors, task files and SAE files (each skipped when already written)."""
    layers = sorted({f.layer for f in read_feature_list(list_dir / "top_20_features.json")})
    phase = data / "phase7_3"
    rng = np.random.default_rng(1)
    passed = rng.random(args.tasks) < args.pass_rate
    task_ids = np.arange(2, 2 + args.tasks, dtype=np.int64)
    if not (phase / "dataset_instruct_temp_0_0.parquet").is_file():
        write_parquet(phase / "dataset_instruct_temp_0_0.parquet", pd.DataFrame({"task_id": task_ids,
                                                                                 "test_passed": passed}))
    acts = phase / "activations"
    start = time.perf_counter()
    if not (acts / "feature_layer_vectors.npz").is_file():
        sites = {site: np.stack([_vectors(args.tasks, args.d_model, passed, np.random.default_rng((i, layer)))
                                 for layer in layers], axis=1) for i, site in enumerate(("resid_pre", "resid_post"))}
        write_npz(acts / "feature_layer_vectors.npz", task_id=task_ids, layers=np.asarray(layers), **sites)
        write_json(acts / "activations_metadata.json", {"model": "synthetic-gemma-2-2b-size", "hook_point": "resid_pre",
                                                        "layers": list(BEST_LAYERS), "d_model": args.d_model})
        for layer in BEST_LAYERS:
            _write_task_files(acts, layer, task_ids, passed, args)
    saes = {layer: data / "saes" / f"layer_{layer}" / "params.npz" for layer in layers}
    for layer, path in saes.items():
        if not path.is_file():
            _write_sae(path, layer, args)
    print(f"inputs ready in {time.perf_counter() - start:.0f} s under {data}", file=sys.stderr)
    return saes


def _write_task_files(acts: Path, layer: int, task_ids: np.ndarray, passed: np.ndarray,
                      args: argparse.Namespace) -> None:
    rng = np.random.default_rng((2, layer))
    for task, ok in zip(task_ids, passed):
        n = int(rng.integers(args.tokens // 2, 3 * args.tokens // 2))
        seq = _vectors(n, args.d_model, np.full(n, ok), rng)
        seq[0] *= 100  # the first position's outlier norm
        write_npz(acts / "task_activations" / activation_file_name(int(task), layer), arr_0=seq[-1:],
                  resid_pre_last=seq[-1:], resid_post_last=seq[-1:], sequence=seq.astype(np.float16),
                  token_ids=np.arange(n, dtype=np.int32), n_prompt_tokens=np.int64(n // 2))


def _write_sae(path: Path, layer: int, args: argparse.Namespace) -> None:
    """A random SAE in GemmaScope's layout whose threshold lets about ``--l0`` latents fire per vector."""
    rng = np.random.default_rng((3, layer))
    w_enc = rng.standard_normal((args.d_model, args.d_sae), dtype=np.float32)
    w_enc /= np.linalg.norm(w_enc, axis=0, keepdims=True)
    calibration = _vectors(64, args.d_model, np.zeros(64, bool), rng)
    level = np.quantile(calibration @ w_enc, 1 - args.l0 / args.d_sae)
    write_npz(path, W_enc=w_enc, b_enc=np.zeros(args.d_sae, np.float32),
              threshold=np.full(args.d_sae, level, np.float32), W_dec=np.ascontiguousarray(w_enc.T),
              b_dec=np.zeros(args.d_model, np.float32))


def _vectors(n: int, d: int, passed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Residual-stream-like float32 vectors: a shared mean, 64 decaying factors, noise, a weak outcome direction."""
    factors = rng.standard_normal((n, 64)) * (np.arange(1, 65) ** -0.7) * 10
    x = factors @ rng.standard_normal((64, d)) + rng.standard_normal((n, d)) + 3 * rng.standard_normal(d)
    x += 0.5 * np.outer(passed - passed.mean(), rng.standard_normal(d)) / np.sqrt(d) * 8
    return x.astype(np.float32)


def _run_stage(data: Path, list_dir: Path, saes: dict[int, Path], args: argparse.Namespace) -> list[dict]:
    command = [sys.executable, "cli.py", "features", "--data-dir", str(data), "--overwrite",
               "--token-vectors", str(args.token_vectors), *(w for l, p in saes.items() for w in ("--sae", f"{l}={p}"))]
    if args.compare:
        phase = data / "phase7_3"
        command += ["--compare-activations", str(phase / "activations"),
                    "--compare-dataset", str(phase / "dataset_instruct_temp_0_0.parquet")]
    env = {**os.environ, PHASE2_10_ENV: str(list_dir), "HF_HUB_OFFLINE": "1"}
    load_before = os.getloadavg()
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    meta = read_json(data / "phase7_3" / "features" / fm.FEATURES_METADATA_FILE)
    rows = [{"step": step, "wall_s": seconds} for step, seconds in meta[fm.STEP_SECONDS].items()]
    rows.append({"step": "stage (wall_time_s)", "wall_s": meta[fm.WALL_TIME_S]})
    rows.append({"step": "process (start to exit)", "wall_s": wall, "peak_rss_mb": peak_mb})
    load_after = os.getloadavg()
    print(f"\n== features stage: {args.tasks} tasks, {len(saes)} layers x 2 sites, d_model {args.d_model}, "
          f"d_sae {args.d_sae}, --token-vectors {args.token_vectors}" + (", with a comparison run" if args.compare else ""))
    print(format_table(rows))
    print(f"command: PVA_PHASE2_10_DIR={list_dir} {' '.join(command[1:6])} ... (--sae per layer)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
          f"{load_after[2]:.2f} on {os.cpu_count()} CPUs")
    return rows


if __name__ == "__main__":
    main()
