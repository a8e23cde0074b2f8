"""Reading the report's inputs: optional files, layer choice, and bad files named in errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from artifacts.errors import InputError
from artifacts.files import write_json, write_npz, write_parquet
from artifacts.layout import activation_file_name
from artifacts.tables import read_dataset
from report.load import DATASET_REQUIRED, discover_layers, load_inputs, read_layer
from tests.report.synthetic import write_outputs


def test_reads_every_companion_file(tmp_path):
    syn = write_outputs(tmp_path, n_tasks=12, n_passed=4, d_model=8)
    inputs = load_inputs(dataset_path=syn.phase_dir / "dataset_instruct_temp_0_0.parquet",
                         activations_dir=syn.phase_dir / "activations")
    assert inputs.dataset["task_id"].is_monotonic_increasing and len(inputs.dataset) == 12
    assert inputs.metadata["model_type"] == "instruction_tuned"
    assert inputs.generations_metadata["n_tasks"] == 12
    # Only the small generation columns are read, never the token ids.
    assert set(inputs.generations.columns) == {"task_id", "finish_reason", "n_prompt_tokens", "n_completion_tokens"}
    assert [a.layer for a in inputs.activations] == [16, 19]
    assert inputs.activations[0].x.shape == (12, 8) and inputs.activations[0].x.dtype == np.float32
    np.testing.assert_array_equal(inputs.activations[0].task_ids, syn.dataset["task_id"])


def test_only_the_dataset_is_required(tmp_path):
    syn = write_outputs(tmp_path, n_tasks=5, n_passed=1, with_activations=False, with_generations=False)
    (syn.phase_dir / "metadata.json").unlink()
    inputs = load_inputs(dataset_path=syn.phase_dir / "dataset_instruct_temp_0_0.parquet",
                         activations_dir=syn.phase_dir / "activations")
    assert inputs.metadata is None and inputs.generations is None and inputs.generations_metadata is None
    assert inputs.activations_metadata is None and inputs.activations == ()


def test_layers_come_from_metadata_then_files(tmp_path):
    syn = write_outputs(tmp_path, n_tasks=4, n_passed=2, layers=(3, 7))
    acts = syn.phase_dir / "activations"
    dataset_path = syn.phase_dir / "dataset_instruct_temp_0_0.parquet"
    write_json(acts / "activations_metadata.json", {"layers": [7]})
    assert [a.layer for a in load_inputs(dataset_path=dataset_path, activations_dir=acts).activations] == [7]
    (acts / "activations_metadata.json").unlink()
    meta = json.loads((syn.phase_dir / "metadata.json").read_text())
    write_json(syn.phase_dir / "metadata.json", {**meta, "extraction_layers": [3]})
    assert [a.layer for a in load_inputs(dataset_path=dataset_path, activations_dir=acts).activations] == [3]
    write_json(syn.phase_dir / "metadata.json", {**meta, "extraction_layers": []})
    assert discover_layers(acts / "task_activations") == [3, 7]
    assert [a.layer for a in load_inputs(dataset_path=dataset_path, activations_dir=acts).activations] == [3, 7]


def test_layer_discovery_reads_only_activation_file_names(tmp_path):
    folder = tmp_path / "task_activations"
    for name in (activation_file_name(11, 3), activation_file_name(12, 25), "notes_layer_4.npz", "1_layer_5.npz.tmp",
                 activation_file_name(11, 6, suffix="safetensors")):
        write_npz(folder / name, arr_0=np.ones((1, 2), np.float32)) if name.endswith(".npz") else (folder / name).write_text("")
    assert discover_layers(folder) == [3, 25]


def test_missing_task_files_are_counted_not_fatal(tmp_path):
    syn = write_outputs(tmp_path, n_tasks=6, n_passed=3, d_model=4)
    folder = syn.phase_dir / "activations" / "task_activations"
    first = int(syn.dataset["task_id"].iloc[0])
    (folder / activation_file_name(first, 16)).unlink()
    acts = read_layer(folder, 16, syn.dataset["task_id"].to_numpy())
    assert acts.missing_task_ids == (first,) and acts.x.shape == (5, 4)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"arr_0": np.ones((2, 4), np.float32)}, "expected (1, d_model)"),
        ({"arr_0": np.full((1, 4), np.nan, np.float32)}, "NaN"),
        ({"sequence": np.ones((3, 4), np.float16)}, "no arr_0"),
        ({"arr_0": np.ones((1, 5), np.float32)}, "other tasks"),
    ],
)
def test_bad_activation_files_name_the_file(tmp_path, arrays, message):
    folder = tmp_path / "task_activations"
    write_npz(folder / activation_file_name(1, 2), arr_0=np.ones((1, 4), np.float32))
    write_npz(folder / activation_file_name(2, 2), **arrays)
    with pytest.raises(InputError, match=activation_file_name(2, 2)) as err:
        read_layer(folder, 2, np.array([1, 2]))
    assert message in str(err.value)


def test_unreadable_npz_is_an_input_error(tmp_path):
    folder = tmp_path / "task_activations"
    folder.mkdir()
    (folder / activation_file_name(1, 2)).write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        read_layer(folder, 2, np.array([1]))


@pytest.mark.parametrize(
    ("df", "message"),
    [
        (pd.DataFrame({"task_id": [1], "test_passed": [True]}), "missing column(s) cyclomatic_complexity"),
        (pd.DataFrame({"task_id": [1, 1], "test_passed": [True, False], "cyclomatic_complexity": [1, 1]}),
         "appears more than once"),
        (pd.DataFrame({"task_id": [1, 2], "test_passed": [True, None], "cyclomatic_complexity": [1, 1]}),
         "null values"),
    ],
)
def test_bad_datasets_are_input_errors(tmp_path, df, message):
    write_parquet(tmp_path / "d.parquet", df)
    with pytest.raises(InputError, match="d.parquet") as err:
        read_dataset(tmp_path / "d.parquet", required=DATASET_REQUIRED)
    assert message in str(err.value)


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(InputError, match="dataset not found"):
        read_dataset(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_text("nope")
    with pytest.raises(InputError, match="not a readable parquet"):
        read_dataset(tmp_path / "bad.parquet")
    syn = write_outputs(tmp_path / "d", n_tasks=3, n_passed=1, with_activations=False)
    (syn.phase_dir / "generations_metadata.json").write_text("{broken")
    with pytest.raises(InputError, match="generations_metadata.json: not valid JSON"):
        load_inputs(dataset_path=syn.phase_dir / "dataset_instruct_temp_0_0.parquet",
                    activations_dir=syn.phase_dir / "activations")
