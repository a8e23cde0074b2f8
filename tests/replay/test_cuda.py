"""Replay on a CUDA GPU (the production path for Gemma-2): float32 batched and bfloat16 checks."""

from __future__ import annotations

import pytest
import torch

from replay.run import replay_activations
from tests.replay.conftest import layers

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _replay(stage, **kwargs):
    return replay_activations(
        generations_path=stage / "generations.parquet", output_dir=stage, best_layers=layers(0, 1, 2, 3),
        device="cuda", verify=6, show_progress=False, **kwargs,
    )


def test_float32_batched_on_cuda_matches_hugging_face(stage_dir):
    result = _replay(stage_dir, dtype="float32", batch_size=4)
    assert result.metadata["device"] == "cuda" and result.metadata["dtype"] == "float32"
    # Batched shapes round differently; the tiny random model amplifies that ~10x per block.
    v = result.verify
    assert max(v.max_rel_error, v.resid_pre_max_rel_error, v.resid_post_max_rel_error, v.feature_vectors_max_rel_error) < 1e-4
    assert v.fidelity == 1.0


def test_bfloat16_one_by_one_on_cuda_matches_hugging_face(stage_dir):
    result = _replay(stage_dir, dtype="bfloat16", batch_size=1)
    assert result.metadata["dtype"] == "bfloat16"
    # Same kernels and shapes as the Hugging Face reference: equal up to bfloat16 noise at most.
    v = result.verify
    assert max(v.max_rel_error, v.resid_pre_max_rel_error, v.resid_post_max_rel_error, v.feature_vectors_max_rel_error) < 1e-2
    print(f"bfloat16 on cuda: max rel error {result.verify.max_rel_error:.2e}, fidelity {result.verify.fidelity:.4f}")
