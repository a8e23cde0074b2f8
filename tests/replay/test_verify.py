"""``--verify`` has teeth: a wrong hook site, a swapped site, a bad compact row or other tokens show up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from artifacts.files import write_npz, write_parquet
from artifacts.schema.activations import RESID_POST, RESID_PRE
from replay.feature_vectors import FeatureVectors, read_feature_vectors, write_feature_vectors
from replay.generations import read_generations
from replay.model import ModelSpec
from replay.store import activation_path
from replay.verify import relative_error, verify_activations
from tests.replay import tolerances as tol
from tests.replay.conftest import replay

# Loads the tiny Gemma-2 in Hugging Face and TransformerLens: in `make test`, not the fast lane.
pytestmark = pytest.mark.slow


def test_relative_error_is_per_position():
    ref = np.array([[3.0, 4.0], [30.0, 40.0]])
    assert relative_error(ref, ref) == 0.0
    assert relative_error(ref + [[0.0, 0.5], [0.0, 0.5]], ref) == pytest.approx(0.1)  # the small row
    with pytest.raises(ValueError):
        relative_error(ref[:1], ref)


def test_verify_catches_a_wrong_hook_site_and_other_tokens(stage_dir: Path, tiny_gemma2: Path):
    result = replay(stage_dir, 0, 3, hook_point="resid_pre")
    folder = result.activations_dir / "task_activations"
    spec = ModelSpec(str(tiny_gemma2), None, torch.float32, "cpu")
    tasks = read_generations(stage_dir / "generations.parquet")
    kwargs = dict(spec=spec, folder=folder, layers=[0, 3], n=3, show_progress=False)

    compact = result.feature_vectors_path
    right = verify_activations(tasks=tasks, site=RESID_PRE, feature_vectors_path=compact, **kwargs)
    # Batch size 1, the default on CPU: the reference's own computation.
    assert right.max_rel_error <= tol.SAME_COMPUTATION and right.fidelity == 1.0
    assert right.resid_pre_max_rel_error <= tol.SAME_COMPUTATION and right.resid_post_max_rel_error <= tol.SAME_COMPUTATION
    assert right.feature_vectors_max_rel_error <= tol.SAME_COMPUTATION
    assert right.n_completion_positions == sum(t.n_tokens - t.n_prompt_tokens for t in tasks if t.task_id in right.task_ids)

    assert verify_activations(tasks=tasks, site=RESID_POST, **kwargs).max_rel_error > tol.DIFFERENT_VECTOR

    # The other site's vector swapped for the chosen one's: only the resid_post check sees it.
    path = activation_path(folder, right.task_ids[0], 3)
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    write_npz(path, **{**arrays, "resid_post_last": arrays["resid_pre_last"]})
    swapped = verify_activations(tasks=tasks, site=RESID_PRE, **kwargs)
    assert swapped.max_rel_error <= tol.SAME_COMPUTATION and swapped.resid_post_max_rel_error > tol.DIFFERENT_VECTOR
    write_npz(path, **arrays)

    # A compact row one layer off.
    vectors = read_feature_vectors(compact)
    write_feature_vectors(compact, FeatureVectors(vectors.task_id, vectors.layers, vectors.resid_post, vectors.resid_post))
    bad = verify_activations(tasks=tasks, site=RESID_PRE, feature_vectors_path=compact, **kwargs)
    assert bad.max_rel_error <= tol.SAME_COMPUTATION
    assert bad.feature_vectors_max_rel_error > tol.DIFFERENT_VECTOR and bad.resid_pre_max_rel_error > tol.DIFFERENT_VECTOR
    write_feature_vectors(compact, vectors)

    # Tokens vLLM did not choose: fidelity falls (greedy argmax is a single token per position).
    df = pd.read_parquet(stage_dir / "generations.parquet")
    df["completion_token_ids"] = [np.asarray(ids[::-1], dtype=np.int32) for ids in df["completion_token_ids"]]
    write_parquet(stage_dir / "generations.parquet", df)
    shuffled = read_generations(stage_dir / "generations.parquet")
    redone = replay(stage_dir, 0, 3, hook_point="resid_pre")
    assert redone.n_replayed == sum(len(ids) > 1 for ids in df["completion_token_ids"])  # changed tokens are redone
    assert verify_activations(tasks=shuffled, site=RESID_PRE, **kwargs).fidelity < 0.5
