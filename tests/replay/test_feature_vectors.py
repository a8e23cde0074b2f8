"""The compact feature-layer vectors file: schema, atomic parts, newest row wins, rows of other layers dropped."""

from __future__ import annotations

import numpy as np
import pytest

from artifacts.errors import InputError
from artifacts.schema.activations import FEATURE_VECTORS_FILE, FV_KEYS
from replay.feature_vectors import PARTS_SUBDIR, FeatureVectors, FeatureVectorStore, read_feature_vectors, write_feature_vectors

LAYERS = (1, 3, 5)
D_MODEL = 4


def _rows(task_ids, seed=0):
    rng = np.random.default_rng(seed)
    shape = (len(task_ids), len(LAYERS), D_MODEL)
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)


def test_file_schema_matches_the_interface(tmp_path):
    pre, post = _rows([7, 2])
    store = FeatureVectorStore(tmp_path, LAYERS, D_MODEL)
    store.add([7, 2], pre, post)  # written in any order, stored ascending
    rows, clean = store.load_rows()
    assert not clean and sorted(rows) == [2, 7]
    vectors = store.finish(rows, [7, 2])
    path = tmp_path / FEATURE_VECTORS_FILE
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(FV_KEYS) == ["layers", "resid_post", "resid_pre", "task_id"]
        assert npz["task_id"].dtype == np.int64 and npz["task_id"].tolist() == [2, 7]
        assert npz["layers"].dtype == np.int64 and npz["layers"].tolist() == list(LAYERS)
        for key in ("resid_pre", "resid_post"):
            assert npz[key].dtype == np.float32 and npz[key].shape == (2, len(LAYERS), D_MODEL)
        np.testing.assert_array_equal(npz["resid_pre"][1], pre[0])  # task 7's row
        np.testing.assert_array_equal(npz["resid_post"][0], post[1])  # task 2's row
    assert vectors.task_id.tolist() == [2, 7]
    assert not (tmp_path / PARTS_SUBDIR).exists()  # parts removed once merged
    assert sorted(p.name for p in tmp_path.iterdir()) == [FEATURE_VECTORS_FILE]
    assert store.load_rows()[1] is True  # the file alone holds every row: no rewrite needed


def test_newest_row_wins_and_a_crash_keeps_earlier_parts(tmp_path):
    store = FeatureVectorStore(tmp_path, LAYERS, D_MODEL)
    store.finish(dict(zip([1, 2], zip(*_rows([1, 2], seed=0)))), [1, 2])
    old = read_feature_vectors(tmp_path / FEATURE_VECTORS_FILE)
    newer = _rows([2], seed=1)
    store.add([2], *newer)
    newest = _rows([2], seed=2)
    FeatureVectorStore(tmp_path, LAYERS, D_MODEL).add([2], *newest)  # another run (a resumed one) numbers on
    assert sorted(p.name for p in (tmp_path / PARTS_SUBDIR).iterdir()) == ["part-000000.npz", "part-000001.npz"]
    rows, clean = FeatureVectorStore(tmp_path, LAYERS, D_MODEL).load_rows()
    assert not clean
    np.testing.assert_array_equal(rows[1][0], old.resid_pre[0])
    np.testing.assert_array_equal(rows[2][0], newest[0][0])


def test_rows_of_other_layers_or_width_and_damaged_files_are_dropped(tmp_path):
    FeatureVectorStore(tmp_path, LAYERS, D_MODEL).add([1], *_rows([1]))
    assert FeatureVectorStore(tmp_path, (1, 3), D_MODEL).load_rows() == ({}, False)
    assert FeatureVectorStore(tmp_path, LAYERS, D_MODEL + 1).load_rows() == ({}, False)
    (tmp_path / FEATURE_VECTORS_FILE).write_bytes(b"not a zip")
    rows, clean = FeatureVectorStore(tmp_path, LAYERS, D_MODEL).load_rows()
    assert list(rows) == [1] and not clean
    with pytest.raises(InputError, match="not a readable .npz"):
        read_feature_vectors(tmp_path / FEATURE_VECTORS_FILE)


def test_schema_errors_are_input_errors(tmp_path):
    pre, post = _rows([1, 2])
    path = tmp_path / "x.npz"
    write_feature_vectors(path, FeatureVectors(np.array([2, 1]), np.array(LAYERS), pre, post))
    with pytest.raises(InputError, match="do not fit"):  # task ids not ascending
        read_feature_vectors(path)
    np.savez(path, task_id=np.array([1]), layers=np.array(LAYERS))
    with pytest.raises(InputError, match="keys"):
        read_feature_vectors(path)
    with pytest.raises(InputError, match="not found"):
        read_feature_vectors(tmp_path / "missing.npz")


def test_finish_refuses_missing_rows(tmp_path):
    with pytest.raises(RuntimeError, match=r"task\(s\) \[3\]"):
        FeatureVectorStore(tmp_path, LAYERS, D_MODEL).finish(dict(zip([1], zip(*_rows([1])))), [1, 3])
    assert not (tmp_path / FEATURE_VECTORS_FILE).exists()
