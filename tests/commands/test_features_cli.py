"""`python cli.py features` through click: default paths, every flag reaching the library, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import commands.features as features_command
from commands.features import features
from features.run import score_features as real_score_features
from tests.features.synthetic import direction, feature_list, gemmascope_sae, write_run

FEATURES = feature_list([(16, 14439), (17, 9162)], [(19, 5441)])


def invoke(*args: str):
    return CliRunner().invoke(features, list(args), catch_exceptions=False)


def test_registered_in_cli():
    from cli import cli

    assert cli.get_command(None, "features") is features


@pytest.fixture
def data(tmp_path):
    run = write_run(tmp_path / "data" / "phase7_3", features=FEATURES, n_tasks=60, n_passed=20, d_model=16)
    return tmp_path / "data", run


def test_default_paths_under_data_dir_and_the_demo_stand_ins(data, monkeypatch):
    data_dir, run = data
    monkeypatch.setenv("PVA_PHASE2_10_DIR", str(run.feature_list.parent))
    result = invoke("--data-dir", str(data_dir), "--demo-saes")
    assert result.exit_code == 0, result.output
    out = data_dir / "phase7_3" / "features"
    assert (out / "feature_scores.parquet").is_file() and (out / "features_metadata.json").is_file()
    assert sorted(p.name for p in (data_dir / "models" / "demo_saes").iterdir()) == [
        "layer_16.npz", "layer_17.npz", "layer_19.npz"]
    expected = "features: 6 of 6 feature x hook-point rows scored on 60 tasks (20 passed) (demo stand-in SAEs"
    assert expected in result.output
    again = invoke("--data-dir", str(data_dir), "--demo-saes")
    assert "inputs unchanged, kept the stored scores" in again.output


def test_sae_files_and_skipped_layers(data, tmp_path, monkeypatch):
    data_dir, run = data
    monkeypatch.setenv("PVA_PHASE2_10_DIR", str(run.feature_list.parent))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # layer 19 has no --sae: looked up in the (empty) cache only
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    sae16 = gemmascope_sae(tmp_path / "s16.npz", d_model=16, planted={14439: direction(16, 16)})
    sae17 = gemmascope_sae(tmp_path / "s17.npz", d_model=16, seed=1)
    result = invoke("--data-dir", str(data_dir), "--sae", f"16={sae16}", "--sae", f"17={sae17}")
    assert result.exit_code == 0, result.output
    assert "warning: layer 19 not scored:" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert "4 of 6 feature x hook-point rows scored" in result.output
    strict = CliRunner().invoke(features, ["--data-dir", str(data_dir), "--sae", f"16={sae16}", "--sae", f"17={sae17}",
                                           "--require-all"])
    assert strict.exit_code == 2 and "--require-all: 1 layer(s) without an SAE (layer 19:" in strict.output
    bad = CliRunner().invoke(features, ["--data-dir", str(data_dir), "--sae", "16"])
    assert bad.exit_code == 2 and "expected LAYER=PATH" in bad.output


def test_every_flag_reaches_the_library(data, tmp_path, monkeypatch):
    data_dir, run = data
    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return real_score_features(**(kwargs | {"demo_saes_dir": tmp_path / "stand-ins", "sae_paths": {},
                                                "compare_activations_dir": None}))

    monkeypatch.setattr("features.run.score_features", fake)
    sae = gemmascope_sae(tmp_path / "s16.npz", d_model=16)
    other = tmp_path / "other" / "activations" / "task_activations"
    result = invoke(
        "--data-dir", str(tmp_path / "unused"), "--dataset", str(run.dataset_path),
        "--activations-dir", str(run.activations_dir), "--output-dir", str(tmp_path / "out"),
        "--phase2-10-dir", str(tmp_path / "none"), "--phase2-5-dir", str(run.feature_list.parent),
        "--sae", f"16={sae}", "--sae-repo", "me/my-saes", "--require-all", "--seed", "7",
        "--compare-activations", str(other), "--compare-dataset", str(run.dataset_path), "--compare-site", "resid_post",
        "--overwrite",
    )
    assert result.exit_code == 0, result.output
    assert seen["dataset_path"] == run.dataset_path and seen["activations_dir"] == run.activations_dir
    assert seen["output_dir"] == tmp_path / "out" and seen["feature_list_path"] == run.feature_list
    assert seen["sae_paths"] == {16: sae} and seen["sae_repo"] == "me/my-saes" and seen["demo_saes_dir"] is None
    assert seen["require_all"] is True and seen["seed"] == 7 and seen["overwrite"] is True
    assert seen["compare_activations_dir"] == other and seen["compare_dataset_path"] == run.dataset_path
    assert seen["compare_site"] == "resid_post"
    assert (tmp_path / "out" / "feature_scores.parquet").is_file()


def test_missing_feature_list_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv("PVA_PHASE2_10_DIR", raising=False)
    monkeypatch.delenv("PVA_PHASE2_5_DIR", raising=False)
    result = CliRunner().invoke(features, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no top_20_features.json or top_20_latents.json" in result.output
    assert Path(tmp_path / "phase7_3" / "features").exists() is False
