"""Stand-in SAEs: full-width JumpReLU parameters built from a seed, the listed columns as the demo's always were."""

from __future__ import annotations

import numpy as np
import pytest

from artifacts.errors import InputError
from features.sae import FORMAT_STAND_IN, jumprelu_encode, load_layer_sae
from features.sae_source import StandInSae, stand_in_saes
from features.stand_in import params_sha256, stand_in_params
from tests.features.synthetic import D_SAE

D_MODEL = 12
LISTED = [16092, 5, 900, 5]  # unsorted, with a repeat


def earlier_compact_columns(layer: int, listed, d_model: int, seed: int = 0) -> np.ndarray:
    """The W_enc columns the demo's compact stand-in files held (features/demo_saes.py before issue 18)."""
    w = np.random.default_rng([seed, layer]).normal(size=(d_model, len(sorted(set(listed)))))
    w /= np.linalg.norm(w, axis=0, keepdims=True)
    return w.astype(np.float32)


def test_full_width_float32_parameters():
    p = stand_in_params(16, d_model=D_MODEL, d_sae=D_SAE, listed=LISTED)
    shapes = {k: (v.shape, v.dtype) for k, v in p.items()}
    f32 = np.dtype(np.float32)
    assert shapes == {"W_enc": ((D_MODEL, D_SAE), f32), "b_enc": ((D_SAE,), f32), "threshold": ((D_SAE,), f32),
                      "W_dec": ((D_SAE, D_MODEL), f32), "b_dec": ((D_MODEL,), f32)}
    np.testing.assert_allclose(np.linalg.norm(p["W_enc"], axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(p["W_dec"], axis=1), 1.0, rtol=1e-5)
    assert not p["b_enc"].any() and not p["threshold"].any() and p["b_dec"].std() > 0.5


def test_listed_columns_are_the_earlier_stand_ins_and_the_rest_does_not_depend_on_the_list():
    p = stand_in_params(19, d_model=D_MODEL, d_sae=D_SAE, listed=LISTED)
    np.testing.assert_array_equal(p["W_enc"][:, [5, 900, 16092]], earlier_compact_columns(19, LISTED, D_MODEL))
    other = stand_in_params(19, d_model=D_MODEL, d_sae=D_SAE, listed=[7])
    untouched = np.setdiff1d(np.arange(D_SAE), [5, 7, 900, 16092])
    np.testing.assert_array_equal(p["W_enc"][:, untouched], other["W_enc"][:, untouched])
    np.testing.assert_array_equal(p["W_dec"], other["W_dec"])


def test_seeded_per_layer_and_seed():
    a = stand_in_params(16, d_model=D_MODEL, d_sae=D_SAE, listed=LISTED)
    assert params_sha256(a) == params_sha256(stand_in_params(16, d_model=D_MODEL, d_sae=D_SAE, listed=LISTED))
    assert params_sha256(a) != params_sha256(stand_in_params(17, d_model=D_MODEL, d_sae=D_SAE, listed=LISTED))
    assert params_sha256(a) != params_sha256(stand_in_params(16, d_model=D_MODEL, d_sae=D_SAE, listed=LISTED, seed=1))


def test_loaded_columns_encode_like_the_full_sae():
    sae = load_layer_sae(StandInSae(16, 0), LISTED, d_model=D_MODEL)
    p = stand_in_params(16, d_model=D_MODEL, d_sae=D_SAE, listed=LISTED)
    assert sae.sha256 == params_sha256(p) and sae.sae_id == "stand-in:seed_0/layer_16"
    cols = sae.columns
    assert cols.file_format == FORMAT_STAND_IN and cols.stand_in and cols.d_sae == D_SAE and cols.d_model == D_MODEL
    np.testing.assert_array_equal(cols.feature_idx, [5, 900, 16092])
    x = np.random.default_rng(0).normal(size=(40, D_MODEL)).astype(np.float32)
    pre = x.astype(np.float64) @ p["W_enc"].astype(np.float64) + p["b_enc"]
    full = np.where(pre > p["threshold"], np.maximum(pre, 0.0), 0.0)
    np.testing.assert_array_equal(jumprelu_encode(x, cols), full[:, cols.feature_idx])


def test_local_files_win_and_every_other_layer_gets_a_stand_in(tmp_path):
    sae = tmp_path / "s.npz"
    found = stand_in_saes([16, 17, 19], local={17: sae}, seed=0)
    assert [(type(s).__name__, s.layer) for s in found] == [("StandInSae", 16), ("SaeFile", 17), ("StandInSae", 19)]


def test_bad_arguments():
    with pytest.raises(InputError, match="d_model must be positive"):
        stand_in_params(16, d_model=0, d_sae=D_SAE, listed=[1])
    with pytest.raises(InputError, match="outside 0..16383"):
        stand_in_params(16, d_model=4, d_sae=D_SAE, listed=[16384])
