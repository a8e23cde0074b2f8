"""Replay on a CUDA GPU (the production path for Gemma-2): float32 batched and bfloat16 checks."""

from __future__ import annotations

import pytest
import torch

from tests.replay.conftest import replay

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# Not measured across thread counts (no GPU in the session that set the CPU bounds of
# tests/replay/tolerances.py): cuBLAS picks its kernels by shape, as the CPU ones do. float32
# batched: the CPU's measured batched spread amplified by this random model (~10x a block) is
# the same order, 1e-4 leaves room. bfloat16: the unit roundoff 2**-8 = 3.9e-3, compounded
# over 4 blocks.
CUDA_FLOAT32_BATCHED = 1e-4
CUDA_BFLOAT16 = 1e-2


def _replay(stage, **settings):
    return replay(stage, 0, 1, 2, 3, device="cuda", verify=6, **settings)


def test_float32_batched_on_cuda_matches_hugging_face(stage_dir):
    result = _replay(stage_dir, dtype="float32", batch_size=4)
    assert result.metadata["device"] == "cuda" and result.metadata["dtype"] == "float32"
    v = result.verify
    errors = (v.max_rel_error, v.resid_pre_max_rel_error, v.resid_post_max_rel_error, v.feature_vectors_max_rel_error)
    print(f"float32 batched on cuda: max rel error {max(errors):.2e}")
    assert max(errors) < CUDA_FLOAT32_BATCHED
    assert v.fidelity == 1.0


def test_bfloat16_one_by_one_on_cuda_matches_hugging_face(stage_dir):
    result = _replay(stage_dir, dtype="bfloat16", batch_size=1)
    assert result.metadata["dtype"] == "bfloat16"
    # Same kernels and shapes as the Hugging Face reference: equal up to bfloat16 noise at most.
    v = result.verify
    errors = (v.max_rel_error, v.resid_pre_max_rel_error, v.resid_post_max_rel_error, v.feature_vectors_max_rel_error)
    print(f"bfloat16 on cuda: max rel error {max(errors):.2e}, fidelity {v.fidelity:.4f}")
    assert max(errors) < CUDA_BFLOAT16
