"""Token vectors sampled from the stored sequence arrays: position 0 left out, uniform over positions, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from artifacts.errors import InputError
from artifacts.files import write_npz
from artifacts.layout import activation_file_name
from features.tokens import sample_tokens


def write_tasks(folder, lengths: dict[int, int], layer: int = 16, d_model: int = 4):
    """Task files whose sequence row p of task t holds (t, p, 0, 0)."""
    for task, n in lengths.items():
        seq = np.zeros((n, d_model), dtype=np.float16)
        seq[:, 0], seq[:, 1] = task, np.arange(n)
        write_npz(folder / "task_activations" / activation_file_name(task, layer), sequence=seq,
                  token_ids=np.arange(n, dtype=np.int32), arr_0=np.zeros((1, d_model), np.float32))


def drawn(sample) -> set[tuple[int, int]]:
    return {(int(v[0]), int(v[1])) for batch in sample.vectors() for v in batch}


def test_every_position_but_the_first_when_the_sample_is_larger(tmp_path):
    write_tasks(tmp_path, {1: 4, 2: 3, 5: 1})
    sample = sample_tokens(tmp_path, 16, [1, 2, 3, 5], n=100, seed=0)
    assert sample.n_positions == 5 and sample.n_vectors == 5
    assert drawn(sample) == {(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)}
    assert drawn(sample_tokens(tmp_path, 16, [1, 2, 5], n=0, seed=0)) == drawn(sample)  # 0: every position


def test_a_seeded_uniform_sample(tmp_path):
    write_tasks(tmp_path, {t: 11 for t in range(1, 41)})  # 400 eligible positions
    counts = np.zeros(11)
    for seed in range(200):
        sample = sample_tokens(tmp_path, 16, range(1, 41), n=40, seed=(0, seed))
        picked = drawn(sample)
        assert len(picked) == 40 and all(p >= 1 for _, p in picked)
        for _, p in picked:
            counts[p] += 1
    assert counts[0] == 0
    # 8000 draws over 10 positions: 800 each expected, binomial sd ~27; 6 sd of margin.
    assert np.all(np.abs(counts[1:] - 800) < 160)
    assert drawn(sample_tokens(tmp_path, 16, range(1, 41), n=40, seed=(0, 3))) == \
        drawn(sample_tokens(tmp_path, 16, range(1, 41), n=40, seed=(0, 3)))


def test_batches_hold_whole_tasks(tmp_path):
    write_tasks(tmp_path, {t: 5 for t in range(1, 11)})
    batches = list(sample_tokens(tmp_path, 16, range(1, 11), n=0, seed=0).vectors(batch=9))
    assert [len(b) for b in batches] == [12, 12, 12, 4] and all(b.dtype == np.float32 for b in batches)


def test_no_sequence_no_sample(tmp_path):
    write_npz(tmp_path / "task_activations" / "1_layer_16.npz", arr_0=np.zeros((1, 4), np.float32))
    assert sample_tokens(tmp_path, 16, [1], n=10, seed=0) is None
    assert sample_tokens(tmp_path, 17, [1], n=10, seed=0) is None  # no file at that layer


def test_non_finite_vectors_are_a_one_line_error(tmp_path):
    write_tasks(tmp_path, {1: 4})
    path = tmp_path / "task_activations" / "1_layer_16.npz"
    seq = np.full((4, 4), np.inf, dtype=np.float16)
    write_npz(path, sequence=seq, token_ids=np.arange(4, dtype=np.int32))
    with pytest.raises(InputError, match="sequence holds NaN or inf"):
        list(sample_tokens(tmp_path, 16, [1], n=0, seed=0).vectors())
