"""Whole SAEs from GemmaScope's params.npz: every array read, one-line errors for files that are not SAEs."""

from __future__ import annotations

import numpy as np
import pytest

from artifacts.errors import InputError
from artifacts.files import sha256_file, write_npz
from features.sae import FORMAT_GEMMASCOPE, SaeFile, load_layer_sae, read_params
from tests.features.synthetic import D_SAE, gemmascope_sae

KEYS = ("W_enc", "b_enc", "threshold", "W_dec", "b_dec")


def full_params(path):
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def test_reads_every_array_of_a_standard_params_npz(tmp_path):
    path = gemmascope_sae(tmp_path / "params.npz", d_model=48, seed=3, fits=True)
    full = full_params(path)
    sae = read_params(path, expected_d_sae=D_SAE)
    assert (sae.d_model, sae.d_sae) == (48, D_SAE)
    for key in KEYS:
        np.testing.assert_array_equal(getattr(sae, key), full[key])
        assert getattr(sae, key).dtype == np.float32 and getattr(sae, key).flags.c_contiguous


def test_layer_sae_from_a_file_carries_its_source_and_sha256(tmp_path):
    path = gemmascope_sae(tmp_path / "params.npz", d_model=8, seed=1)
    loaded = load_layer_sae(SaeFile(16, path, f"local:{path}"), [5, 14439], d_model=8)
    assert loaded.layer == 16 and loaded.sae_id == f"local:{path}" and loaded.sha256 == sha256_file(path)
    assert loaded.file_format == FORMAT_GEMMASCOPE and not loaded.stand_in


@pytest.mark.parametrize("writer", ["compressed", "fortran", "float16"])
def test_other_npz_variants_load_as_float32(tmp_path, writer):
    rng = np.random.default_rng(0)
    dtype = np.float16 if writer == "float16" else np.float32
    W = rng.normal(size=(8, D_SAE)).astype(dtype)
    arrays = dict(W_enc=np.asfortranarray(W) if writer == "fortran" else W, b_enc=np.zeros(D_SAE, dtype),
                  threshold=np.zeros(D_SAE, dtype), W_dec=np.ascontiguousarray(W.T), b_dec=np.zeros(8, dtype))
    path = tmp_path / "params.npz"
    (np.savez_compressed if writer == "compressed" else np.savez)(path, **arrays)
    sae = read_params(path)
    np.testing.assert_array_equal(sae.W_enc, W.astype(np.float32))
    assert sae.W_enc.dtype == np.float32 and sae.W_enc.flags.c_contiguous


def test_width_not_matching_the_feature_list_is_a_one_line_error(tmp_path):
    path = gemmascope_sae(tmp_path / "p.npz", d_model=8, d_sae=4096)
    with pytest.raises(InputError, match="SAE width 4096 does not match the feature list's 16384") as err:
        read_params(path, expected_d_sae=D_SAE)
    assert "\n" not in str(err.value)


def test_feature_index_outside_the_sae_is_a_one_line_error(tmp_path):
    path = gemmascope_sae(tmp_path / "p.npz", d_model=8)
    with pytest.raises(InputError, match=r"feature\(s\) \[16384, 20000\] outside the SAE \(latents 0..16383\)"):
        load_layer_sae(SaeFile(3, path, "x"), [3, 16384, 20000], d_model=8)


def test_files_that_are_not_sae_files(tmp_path):
    write_npz(tmp_path / "other.npz", arr_0=np.zeros((1, 4), np.float32))
    with pytest.raises(InputError, match="not a GemmaScope params.npz"):
        read_params(tmp_path / "other.npz")
    path = gemmascope_sae(tmp_path / "p.npz", d_model=8, d_sae=64)
    arrays = full_params(path)
    write_npz(tmp_path / "no_decoder.npz", **{k: v for k, v in arrays.items() if k != "W_dec"})
    with pytest.raises(InputError, match="no W_dec"):
        read_params(tmp_path / "no_decoder.npz")
    write_npz(tmp_path / "bad_shape.npz", **(arrays | {"W_dec": arrays["W_dec"][:, :4]}))
    with pytest.raises(InputError, match=r"W_dec has shape \(64, 4\), expected \(64, 8\)"):
        read_params(tmp_path / "bad_shape.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable .npz file"):
        read_params(tmp_path / "bad.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(InputError, match="a single .npy array, not an .npz archive"):
        read_params(tmp_path / "one.npy")
    with pytest.raises(InputError, match="SAE file not found"):
        read_params(tmp_path / "missing.npz")
