import numpy as np

from stats.null_latents import draw_null_latents, null_percentile


def test_percentile_counts_ties_half():
    null = np.array([0.5, 0.6, 0.7, 0.8])
    assert null_percentile(0.7, null) == 100 * (2 + 0.5) / 4
    assert null_percentile(0.9, null) == 100.0
    assert null_percentile(0.1, null) == 0.0
    assert null_percentile(0.5, np.full(10, 0.5)) == 50.0  # never fires, like most nulls


def test_percentile_nan_cases():
    assert np.isnan(null_percentile(float("nan"), np.array([0.5, 0.6])))
    assert np.isnan(null_percentile(0.7, np.array([np.nan, np.nan])))
    assert null_percentile(0.7, np.array([np.nan, 0.6])) == 100.0  # NaN nulls left out


def test_draw_excludes_listed_latents_and_is_seeded():
    listed = [3, 17, 500]
    drawn = draw_null_latents(1024, 300, exclude=listed, seed=(0, 12))
    assert drawn.size == 300 and np.unique(drawn).size == 300
    assert np.all(np.diff(drawn) > 0) and drawn.min() >= 0 and drawn.max() < 1024
    assert not set(listed) & set(drawn.tolist())
    assert np.array_equal(drawn, draw_null_latents(1024, 300, exclude=listed, seed=(0, 12)))
    assert not np.array_equal(drawn, draw_null_latents(1024, 300, exclude=listed, seed=(0, 13)))


def test_draw_takes_every_remaining_latent_when_asked_for_more():
    assert draw_null_latents(6, 10, exclude=[1, 4]).tolist() == [0, 2, 3, 5]
