"""SAE files (GemmaScope layout) and the JumpReLU encoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import features.sae as sae_module
from artifacts.errors import InputError
from artifacts.files import write_npz
from features.sae import FORMAT_GEMMASCOPE, jumprelu_encode, load_sae_columns
from tests.features.synthetic import D_SAE, gemmascope_sae

LISTED = [16092, 5, 14439, 11225, 5]  # unsorted, with a repeat


def full_params(path):
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def test_loads_only_the_listed_columns_of_a_standard_params_npz(tmp_path):
    path = gemmascope_sae(tmp_path / "params.npz", d_model=48, seed=3)
    full = full_params(path)
    sae = load_sae_columns(path, LISTED, expected_d_sae=D_SAE)
    idx = np.array([5, 11225, 14439, 16092])
    assert sae.file_format == FORMAT_GEMMASCOPE and not sae.stand_in
    assert sae.d_sae == D_SAE and sae.d_model == 48
    np.testing.assert_array_equal(sae.feature_idx, idx)
    np.testing.assert_array_equal(sae.W_enc, full["W_enc"][:, idx])
    np.testing.assert_array_equal(sae.b_enc, full["b_enc"][idx])
    np.testing.assert_array_equal(sae.threshold, full["threshold"][idx])
    assert not hasattr(sae, "W_dec")
    assert sae.column(14439) == 2


def test_streamed_read_in_many_blocks_equals_the_full_array(tmp_path, monkeypatch):
    monkeypatch.setattr(sae_module, "STREAM_BLOCK_BYTES", 3 * D_SAE * 4)  # 3 rows per block, last block short
    path = gemmascope_sae(tmp_path / "params.npz", d_model=10, seed=4)
    sae = load_sae_columns(path, LISTED)
    np.testing.assert_array_equal(sae.W_enc, full_params(path)["W_enc"][:, sae.feature_idx])


@pytest.mark.parametrize("writer", ["compressed", "fortran", "float16"])
def test_other_npz_variants_load(tmp_path, writer):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(8, D_SAE)).astype(np.float16 if writer == "float16" else np.float32)
    arrays = dict(W_enc=np.asfortranarray(W) if writer == "fortran" else W, b_enc=np.zeros(D_SAE, np.float32),
                  threshold=np.zeros(D_SAE, np.float32), W_dec=np.zeros((D_SAE, 8), np.float32))
    path = tmp_path / "params.npz"
    (np.savez_compressed if writer == "compressed" else np.savez)(path, **arrays)
    sae = load_sae_columns(path, [7, 9000])
    np.testing.assert_array_equal(sae.W_enc, W[:, [7, 9000]].astype(np.float32))
    assert sae.W_enc.dtype == np.float32


def reference_torch(x: np.ndarray, path, idx) -> np.ndarray:
    """Independent reference: torch float32 over the whole SAE, then the listed columns."""
    p = {k: torch.from_numpy(v) for k, v in full_params(path).items()}
    pre = torch.from_numpy(x) @ p["W_enc"] + p["b_enc"]
    acts = torch.relu(pre) * (pre > p["threshold"])
    return acts[:, idx].numpy()


def reference_loop(x: np.ndarray, path, idx) -> np.ndarray:
    """Independent reference: one latent and one task at a time, in Python floats."""
    p = full_params(path)
    out = np.zeros((x.shape[0], len(idx)))
    for j, f in enumerate(idx):
        w, b, t = p["W_enc"][:, f].astype(float), float(p["b_enc"][f]), float(p["threshold"][f])
        for i in range(x.shape[0]):
            pre = float(np.dot(x[i].astype(float), w)) + b
            out[i, j] = max(pre, 0.0) if pre > t else 0.0
    return out


def test_encoding_equals_independent_references_negative_thresholds_included(tmp_path):
    d_model = 24
    path = gemmascope_sae(tmp_path / "params.npz", d_model=d_model, seed=5, negative_thresholds=True)
    full = full_params(path)
    idx = sorted(set(int(i) for i in np.flatnonzero(full["threshold"] < -0.3)[:12]) | {3, 7000, 16383})
    x = np.random.default_rng(6).normal(size=(300, d_model)).astype(np.float32)
    sae = load_sae_columns(path, idx)
    acts = jumprelu_encode(x, sae, block_tasks=64)  # several blocks, the last one short

    np.testing.assert_allclose(acts, reference_torch(x, path, idx), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(acts, reference_loop(x, path, idx), rtol=1e-9, atol=1e-9)
    # The negative thresholds matter: where threshold < pre < 0 the JumpReLU gives 0, while the
    # shortcut pre * (pre > threshold) would give a negative value.
    pre = x.astype(np.float64) @ full["W_enc"][:, idx].astype(np.float64) + full["b_enc"][idx]
    between = (pre > full["threshold"][idx]) & (pre < 0)
    assert between.sum() > 50
    assert np.all(acts[between] == 0.0)
    assert np.all(acts >= 0)


def test_encoding_rejects_activations_of_another_width(tmp_path):
    sae = load_sae_columns(gemmascope_sae(tmp_path / "p.npz", d_model=16), [1])
    with pytest.raises(InputError, match="width 12 do not match the SAE's d_model 16"):
        jumprelu_encode(np.zeros((3, 12), np.float32), sae)


def test_width_not_matching_the_feature_list_is_a_one_line_error(tmp_path):
    path = gemmascope_sae(tmp_path / "p.npz", d_model=8, d_sae=4096)
    with pytest.raises(InputError, match="SAE width 4096 does not match the feature list's 16384") as err:
        load_sae_columns(path, [1], expected_d_sae=D_SAE)
    assert "\n" not in str(err.value)


def test_feature_index_outside_the_sae_is_a_one_line_error(tmp_path):
    path = gemmascope_sae(tmp_path / "p.npz", d_model=8, d_sae=1000)
    with pytest.raises(InputError, match=r"feature\(s\) \[1000, 5000\] outside the SAE \(latents 0..999\)"):
        load_sae_columns(path, [3, 1000, 5000])


def test_files_that_are_not_sae_files(tmp_path):
    write_npz(tmp_path / "other.npz", arr_0=np.zeros((1, 4), np.float32))
    with pytest.raises(InputError, match="not a GemmaScope params.npz"):
        load_sae_columns(tmp_path / "other.npz", [1])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable .npz file"):
        load_sae_columns(tmp_path / "bad.npz", [1])
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(InputError, match="a single .npy array, not an .npz archive"):
        load_sae_columns(tmp_path / "one.npy", [1])
    with pytest.raises(InputError, match="SAE file not found"):
        load_sae_columns(tmp_path / "missing.npz", [1])
