import numpy as np
import pytest

from stats.sae_fit import JumpReluSae, SaeFitAccumulator, encode, sae_fit


def _reference(x: np.ndarray, sae: JumpReluSae) -> tuple[float, float]:
    """FVU and L0 the plain way: one vector at a time in float64, then a two-pass variance."""
    x = x.astype(np.float64)
    sse = 0.0
    active = 0
    for v in x:
        pre = v @ sae.W_enc.astype(np.float64) + sae.b_enc
        acts = np.maximum(pre, 0) * (pre > sae.threshold)
        active += int(np.count_nonzero(acts))
        x_hat = acts @ sae.W_dec.astype(np.float64) + sae.b_dec
        sse += float(np.sum((v - x_hat) ** 2))
    sst = float(np.sum((x - x.mean(axis=0)) ** 2))
    return sse / sst, active / len(x)


def _dyadic_case(seed: int, n: int = 70, d_model: int = 64, d_sae: int = 512, threshold_offset: float = 0.0):
    """Small multiples of 1/4 (thresholds offset by 1/8): every float32 product and sum is exact,
    in any order, so no pre-activation sits within rounding of its threshold."""
    rng = np.random.default_rng(seed)
    q = lambda *shape: rng.integers(-4, 5, size=shape).astype(np.float32) / 4  # noqa: E731
    sae = JumpReluSae(
        W_enc=q(d_model, d_sae),
        b_enc=q(d_sae),
        threshold=np.abs(q(d_sae)) + np.float32(1 / 8 + threshold_offset),
        W_dec=q(d_sae, d_model),
        b_dec=q(d_model),
    )
    x = rng.integers(-4, 5, size=(n, d_model)).astype(np.float32) + 3  # a mean to subtract
    return x, sae


@pytest.mark.parametrize("seed", range(3))
def test_equals_the_plain_computation_exactly_on_exact_arithmetic(seed):
    """L0 equal; FVU to 1e-12 relative (the sums are exact; only the variance's summation order
    differs: measured <= 1.1e-16 over these 3 seeds)."""
    x, sae = _dyadic_case(seed)
    fit = sae_fit(x, sae, block_rows=16)
    fvu, l0 = _reference(x, sae)
    assert fit.n_vectors == len(x)
    assert fit.l0 == l0
    assert fit.fvu == pytest.approx(fvu, rel=1e-12)


def test_sparse_decoding_equals_the_plain_computation():
    """High thresholds: few latents fire, so blocks decode with the active rows of W_dec only."""
    x, sae = _dyadic_case(9, threshold_offset=32.0)  # ~27 of 512 latents per vector, 27 % per block
    active = np.mean(encode(sae, x[:16]).any(axis=0))
    assert 0 < active < 0.5  # the sparse path (SPARSE_DECODE_BELOW)
    fit = sae_fit(x, sae, block_rows=16)
    fvu, l0 = _reference(x, sae)
    assert fit.l0 == l0 and fit.fvu == pytest.approx(fvu, rel=1e-12)  # exact sums: measured 1.1e-16


def test_equals_the_plain_computation_on_gaussian_data():
    """float32 products against float64: FVU measured within 1.2e-8 relative over 5 seeds; bound
    1e-6. L0 equal (no pre-activation within float32 rounding of its threshold on this draw)."""
    rng = np.random.default_rng(0)
    d_model, d_sae = 48, 400
    w = (rng.standard_normal((d_model, d_sae)) / np.sqrt(d_model)).astype(np.float32)
    sae = JumpReluSae(
        W_enc=w,
        b_enc=(0.1 * rng.standard_normal(d_sae)).astype(np.float32),
        threshold=np.abs(0.5 * rng.standard_normal(d_sae)).astype(np.float32),
        W_dec=(0.3 * w.T).copy(),
        b_dec=rng.standard_normal(d_model).astype(np.float32),
    )
    x = (rng.standard_normal((90, d_model)) + 2).astype(np.float32)
    assert all(a.dtype == np.float32 for a in (sae.W_enc, sae.b_enc, sae.threshold, sae.W_dec, sae.b_dec))
    fit = sae_fit(x, sae)
    fvu, l0 = _reference(x, sae)
    assert fit.fvu == pytest.approx(fvu, rel=1e-6)
    assert fit.l0 == l0


def test_perfect_reconstruction_has_fvu_zero():
    """Latents +e_i and -e_i, decoded back: relu(x) - relu(-x) = x exactly."""
    d = 16
    eye = np.eye(d, dtype=np.float32)
    sae = JumpReluSae(
        W_enc=np.hstack([eye, -eye]),
        b_enc=np.zeros(2 * d, dtype=np.float32),
        threshold=np.zeros(2 * d, dtype=np.float32),
        W_dec=np.vstack([eye, -eye]),
        b_dec=np.zeros(d, dtype=np.float32),
    )
    x = np.random.default_rng(1).standard_normal((50, d)).astype(np.float32)
    fit = sae_fit(x, sae, block_rows=7)
    assert fit.fvu == 0.0
    assert fit.l0 == d  # one of each pair fires for every nonzero coordinate


def test_pieces_and_blocks_do_not_change_the_result():
    """Vectors fed in uneven pieces, blocks of 5 rows: measured 4.9e-15 relative from one call."""
    x, sae = _dyadic_case(4)
    whole = sae_fit(x, sae, block_rows=1000)
    acc = SaeFitAccumulator(sae, block_rows=5)
    for piece in np.split(x, [3, 4, 40]):
        acc.update(piece)
    pieces = acc.result()
    assert pieces.n_vectors == whole.n_vectors and pieces.l0 == whole.l0
    assert pieces.fvu == pytest.approx(whole.fvu, rel=1e-12)


def test_variance_keeps_precision_far_from_the_origin():
    """A mean of 1e6 over a spread of ~3: the one-pass ``sum x^2 - n mean^2`` in float64 is off by
    3.5e-6 to 1.3e-5 relative on seeds 5-9; Chan's update by 7.6e-14 to 1.2e-12. Bound 1e-9."""
    x, sae = _dyadic_case(5)
    x = x + np.float32(1e6)  # integers below 2^24: exact in float32
    acc = SaeFitAccumulator(sae, block_rows=9)
    acc.update(x)
    x64 = x.astype(np.float64)
    assert acc._m2 == pytest.approx(float(np.sum((x64 - x64.mean(axis=0)) ** 2)), rel=1e-9)


def test_keeps_the_asked_latents():
    x, sae = _dyadic_case(6)
    keep = [5, 0, 300]
    fit = sae_fit(x, sae, keep_latents=keep, block_rows=16)
    assert np.array_equal(fit.kept_acts, encode(sae, x)[:, keep])
    assert sae_fit(x, sae).kept_acts is None


def test_too_few_vectors():
    x, sae = _dyadic_case(7)
    empty = sae_fit(x[:0], sae)
    assert empty.n_vectors == 0 and np.isnan(empty.fvu) and np.isnan(empty.l0)
    one = sae_fit(x[:1], sae)
    assert np.isnan(one.fvu) and not np.isnan(one.l0)  # no variance to explain


def test_shapes_are_checked():
    x, sae = _dyadic_case(8)
    with pytest.raises(ValueError):
        JumpReluSae(sae.W_enc, sae.b_enc, sae.threshold, sae.W_dec.T, sae.b_dec)
    with pytest.raises(ValueError):
        sae_fit(x[:, :10], sae)
