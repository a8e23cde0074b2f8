"""The demo's stand-in SAE (``features/standin_sae.py``); here beside the SAE-fit tests it feeds."""

import numpy as np

from features.standin_sae import standin_jumprelu_sae
from stats.sae_fit import sae_fit


def test_full_width_float32_and_tied():
    sae = standin_jumprelu_sae(576, 16384, seed=(0, 12))
    assert sae.W_enc.shape == (576, 16384) and sae.W_dec.shape == (16384, 576)
    assert all(a.dtype == np.float32 for a in (sae.W_enc, sae.b_enc, sae.threshold, sae.W_dec, sae.b_dec))
    np.testing.assert_allclose(np.linalg.norm(sae.W_enc, axis=0), 1.0, atol=1e-5)  # float32 norms: measured 1.1e-6 off
    assert np.array_equal(sae.W_dec, sae.W_enc.T) and sae.W_dec.flags.c_contiguous
    assert not (sae.b_enc.any() or sae.threshold.any() or sae.b_dec.any())


def test_seeded():
    a = standin_jumprelu_sae(32, 256, seed=(0, 5))
    assert np.array_equal(a.W_enc, standin_jumprelu_sae(32, 256, seed=(0, 5)).W_enc)
    assert not np.array_equal(a.W_enc, standin_jumprelu_sae(32, 256, seed=(0, 6)).W_enc)


def test_its_fit_is_poor():
    """Residual-stream-like vectors (a shared mean plus spread): FVU far above 1, about half the
    latents firing. Measured FVU 1.3e5-1.5e5 (x_hat ~ d_sae / (2 d_model) x) and L0
    8170-8310 of 16384 over 3 seeds."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(64) * 3 + rng.standard_normal((100, 64))
    fit = sae_fit(x, standin_jumprelu_sae(64, 16384, seed=1))
    assert fit.fvu > 10
    assert 0.3 * 16384 < fit.l0 < 0.7 * 16384
