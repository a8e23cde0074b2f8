"""Reading a run's vectors: the compact file, both-site contract files, or arr_0 at one site."""

from __future__ import annotations

import numpy as np
import pytest

from artifacts.errors import InputError
from artifacts.files import write_npz
from artifacts.schema.activations import FEATURE_VECTORS_FILE, FV_RESID_POST, FV_RESID_PRE
from features.runs import read_run_vectors
from tests.features.synthetic import feature_list, write_run

FEATURES = feature_list([(16, 1), (17, 2)], [(19, 3)])


def _compact_arrays(run):
    with np.load(run.activations_dir / FEATURE_VECTORS_FILE) as npz:
        return {k: npz[k] for k in npz.files}


def test_compact_file_gives_both_sites_of_every_layer_for_the_dataset_tasks(tmp_path):
    run = write_run(tmp_path, features=FEATURES, n_tasks=30, n_passed=10, d_model=8)
    wanted = run.task_ids[::2]  # the dataset may hold fewer tasks than the file
    v = read_run_vectors(run.activations_dir, layers=[16, 17, 19], task_ids=wanted)
    arrays = _compact_arrays(run)
    assert set(v.vectors) == {(h, l) for h in ("resid_pre", "resid_post") for l in (16, 17, 19)}
    layer = v.vectors[("resid_post", 17)]
    np.testing.assert_array_equal(layer.task_ids, wanted)
    np.testing.assert_array_equal(layer.x, arrays[FV_RESID_POST][::2, 1])
    assert v.sources["resid_pre"] == f"{FEATURE_VECTORS_FILE} ({FV_RESID_PRE})"
    assert v.not_stored == {}


def test_compact_file_without_a_listed_layer(tmp_path):
    run = write_run(tmp_path, features=FEATURES, n_tasks=5, n_passed=2, d_model=4)
    v = read_run_vectors(run.activations_dir, layers=[16, 20], task_ids=run.task_ids)
    assert "holds no layer 20" in v.not_stored[("resid_pre", 20)]


def test_contract_files_with_both_sites(tmp_path):
    run = write_run(tmp_path, features=FEATURES, n_tasks=12, n_passed=4, d_model=8, compact=False,
                    contract="last", contract_layers=(16, 19))
    v = read_run_vectors(run.activations_dir, layers=[16, 17, 19], task_ids=run.task_ids)
    assert sorted(v.vectors) == [("resid_post", 16), ("resid_post", 19), ("resid_pre", 16), ("resid_pre", 19)]
    assert v.not_stored[("resid_pre", 17)] == "that run stores no vectors at layer 17"
    assert v.sources["resid_post"] == "task_activations/ resid_post_last"


def test_arr_0_only_is_read_at_the_site_its_metadata_names(tmp_path):
    run = write_run(tmp_path, features=FEATURES, n_tasks=12, n_passed=4, d_model=8, compact=False,
                    contract="arr_0", hook_point="resid_pre")
    v = read_run_vectors(run.activations_dir, layers=[16, 17, 19], task_ids=run.task_ids)
    assert {k[0] for k in v.vectors} == {"resid_pre"}
    assert v.not_stored[("resid_post", 16)] == "that run stores only arr_0, which is resid_pre, not resid_post"
    assert "per activations_metadata.json" in v.sources["resid_pre"]


def test_arr_0_of_unknown_site(tmp_path):
    run = write_run(tmp_path, features=FEATURES, n_tasks=6, n_passed=2, d_model=4, compact=False,
                    contract="arr_0", hook_point=None)
    v = read_run_vectors(run.activations_dir, layers=[16], task_ids=run.task_ids)
    assert v.vectors == {}
    assert "unknown site" in v.not_stored[("resid_pre", 16)] and "--compare-site" in v.not_stored[("resid_pre", 16)]
    given = read_run_vectors(run.activations_dir, layers=[16], task_ids=run.task_ids, arr0_site="resid_post")
    assert set(given.vectors) == {("resid_post", 16)}


def test_hash_changes_with_the_vectors(tmp_path):
    run = write_run(tmp_path, features=FEATURES, n_tasks=6, n_passed=2, d_model=4)
    first = read_run_vectors(run.activations_dir, layers=[16, 17, 19], task_ids=run.task_ids).sha256()
    assert first == read_run_vectors(run.activations_dir, layers=[16, 17, 19], task_ids=run.task_ids).sha256()
    arrays = _compact_arrays(run)
    arrays[FV_RESID_PRE][0, 0, 0] += 1.0
    write_npz(run.activations_dir / FEATURE_VECTORS_FILE, **arrays)
    assert first != read_run_vectors(run.activations_dir, layers=[16, 17, 19], task_ids=run.task_ids).sha256()


def test_inconsistent_or_missing_inputs_are_one_line_errors(tmp_path):
    run = write_run(tmp_path, features=FEATURES, n_tasks=6, n_passed=2, d_model=4)
    arrays = _compact_arrays(run)
    arrays[FV_RESID_POST] = arrays[FV_RESID_POST][:, :2]
    write_npz(run.activations_dir / FEATURE_VECTORS_FILE, **arrays)
    with pytest.raises(InputError, match=r"resid_post has shape \(6, 2, 4\), expected \(6, 3, d_model\)"):
        read_run_vectors(run.activations_dir, layers=[16], task_ids=run.task_ids)
    arrays[FV_RESID_POST] = np.full((6, 3, 4), np.nan, np.float32)
    write_npz(run.activations_dir / FEATURE_VECTORS_FILE, **arrays)
    with pytest.raises(InputError, match="NaN or inf"):
        read_run_vectors(run.activations_dir, layers=[16], task_ids=run.task_ids)
    with pytest.raises(InputError, match="run replay-activations first"):
        read_run_vectors(tmp_path / "empty", layers=[16], task_ids=[1])
