"""Synthetic inputs of the features stage, in the real file formats.

``write_run`` writes a data folder as the pipeline leaves it: the evaluated dataset
(``task_id``, ``test_passed``), the compact ``feature_layer_vectors.npz`` and/or per-task
contract files (with a ``sequence`` of ``n_tokens`` token vectors at ``hook_point``, the last
one the last-prompt vector), and a feature list. ``gemmascope_sae`` writes a JumpReLU SAE in GemmaScope's
``params.npz`` layout. Along ``direction(layer)`` passed tasks are shifted by ``shift``, so a
latent whose encoder column is that direction separates them; everything else is noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artifacts.files import write_json, write_npz, write_parquet
from artifacts.layout import activation_file_name
from artifacts.schema.activations import FEATURE_VECTORS_FILE, FV_LAYERS, FV_RESID_POST, FV_RESID_PRE, FV_TASK_ID

D_SAE = 16384
DATASET = "dataset_instruct_temp_0_0.parquet"


def direction(layer: int, d_model: int) -> np.ndarray:
    """The unit direction along which passed tasks differ at ``layer``."""
    v = np.random.default_rng(1000 + layer).normal(size=d_model)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class SyntheticRun:
    phase_dir: Path
    dataset_path: Path
    activations_dir: Path
    feature_list: Path
    passed: np.ndarray
    task_ids: np.ndarray
    layers: tuple[int, ...]


def feature_list(correct: list[tuple[int, int]], incorrect: list[tuple[int, int]]) -> dict:
    """A top_20_features.json body from ``(layer, feature_idx)`` pairs, best first."""
    return {
        group: [{"feature_idx": f, "layer": l, "t_statistic": 5.0 - i / 10} for i, (l, f) in enumerate(entries)]
        for group, entries in (("correct", correct), ("incorrect", incorrect))
    }


def write_run(
    phase_dir: Path,
    *,
    features: dict,
    n_tasks: int = 200,
    n_passed: int = 60,
    d_model: int = 32,
    shift: float = 4.0,
    seed: int = 0,
    compact: bool = True,
    contract: str | None = None,  # None, "last" (resid_*_last keys) or "arr_0"
    contract_layers: tuple[int, ...] | None = None,
    hook_point: str | None = "resid_post",
    model: str = "google/gemma-2-2b-it",
    dataset_name: str = DATASET,
    n_tokens: int = 6,
) -> SyntheticRun:
    """Write a run's dataset, vectors and feature list under ``phase_dir`` (module docstring)."""
    rng = np.random.default_rng(seed)
    task_ids = np.arange(11, 11 + n_tasks, dtype=np.int64)
    passed = np.zeros(n_tasks, dtype=bool)
    passed[rng.choice(n_tasks, size=n_passed, replace=False)] = True
    layers = tuple(sorted({e["layer"] for g in ("correct", "incorrect") for e in features[g]}))
    phase_dir.mkdir(parents=True, exist_ok=True)
    dataset_path = phase_dir / dataset_name
    write_parquet(dataset_path, pd.DataFrame({
        "task_id": task_ids, "temperature": 0.0, "test_passed": passed,
        "cyclomatic_complexity": np.ones(n_tasks, dtype=np.int64),
    }))
    write_json(phase_dir / "metadata.json", {"model_name": model})
    sites = {}
    for name in (FV_RESID_PRE, FV_RESID_POST):
        x = rng.normal(size=(n_tasks, len(layers), d_model)) + 2.0
        for j, layer in enumerate(layers):
            x[passed, j] += shift * direction(layer, d_model)
        sites[name] = x.astype(np.float32)
    acts = phase_dir / "activations"
    if compact:
        write_npz(acts / FEATURE_VECTORS_FILE, **{FV_TASK_ID: task_ids, FV_LAYERS: np.asarray(layers, dtype=np.int64)},
                  **sites)
    if contract is not None:
        for j, layer in enumerate(layers):
            if contract_layers is not None and layer not in contract_layers:
                continue
            for i, task_id in enumerate(task_ids):
                last = sites[hook_point or FV_RESID_POST][i, j]
                tokens = rng.normal(size=(n_tokens, d_model)) + 2.0
                tokens[0] *= 50  # the first position's outlier norm, as in real runs (left out of the fit)
                tokens[-1] = last
                arrays = {"arr_0": last[None, :], "sequence": tokens.astype(np.float16),
                          "token_ids": np.arange(n_tokens, dtype=np.int32), "n_prompt_tokens": np.int64(n_tokens)}
                if contract == "last":
                    arrays["resid_pre_last"] = sites[FV_RESID_PRE][i, j][None, :]
                    arrays["resid_post_last"] = sites[FV_RESID_POST][i, j][None, :]
                write_npz(acts / "task_activations" / activation_file_name(task_id, layer), **arrays)
    meta = {"model": model, "layers": list(layers), "d_model": d_model}
    if hook_point:
        meta["hook_point"] = hook_point
    write_json(acts / "activations_metadata.json", meta)
    list_dir = phase_dir / "phase2_10"
    list_dir.mkdir(exist_ok=True)
    (list_dir / "top_20_features.json").write_text(json.dumps(features))
    return SyntheticRun(phase_dir, dataset_path, acts, list_dir / "top_20_features.json", passed, task_ids, layers)


def gemmascope_sae(
    path: Path,
    *,
    d_model: int,
    planted: dict[int, np.ndarray] | None = None,
    d_sae: int = D_SAE,
    seed: int = 0,
    negative_thresholds: bool = False,
    fits: bool = False,
    dtype=np.float32,
) -> Path:
    """A JumpReLU SAE in GemmaScope's params.npz layout; ``planted[idx]`` becomes ``W_enc[:, idx]``.

    Random encoder columns have norm ~1; planted latents get ``b_enc`` = 0 and threshold 0.5.
    The decoder is random (the SAE reconstructs nothing: FVU far above 1) unless ``fits``: then
    latents ``0..2 d_model - 1`` are the pairs ``+e_i`` / ``-e_i`` (threshold 0, decoder rows
    ``+e_i`` / ``-e_i``) and every other decoder row is 0, so ``x_hat = relu(x) - relu(-x) = x``
    (FVU 0 up to rounding) whatever the other latents do.
    """
    rng = np.random.default_rng(seed)
    W_enc = rng.normal(size=(d_model, d_sae)) / np.sqrt(d_model)
    b_enc = rng.normal(scale=0.5, size=d_sae)
    low = -1.0 if negative_thresholds else 0.0
    threshold = rng.uniform(low, 1.0, size=d_sae)
    W_dec = rng.normal(scale=0.1, size=(d_sae, d_model))
    b_dec = rng.normal(size=d_model)
    if fits:
        eye = np.eye(d_model)
        W_enc[:, : 2 * d_model] = np.hstack([eye, -eye])
        b_enc[: 2 * d_model] = threshold[: 2 * d_model] = 0.0
        W_dec[:] = 0.0
        W_dec[: 2 * d_model] = np.vstack([eye, -eye])
        b_dec[:] = 0.0
    for idx, vec in (planted or {}).items():
        W_enc[:, idx] = vec
        b_enc[idx] = 0.0
        threshold[idx] = 0.5
    write_npz(path, W_enc=W_enc.astype(dtype), b_enc=b_enc.astype(dtype), threshold=threshold.astype(dtype),
              W_dec=W_dec.astype(dtype), b_dec=b_dec.astype(dtype))
    return path
