"""`python cli.py features` through click: default paths, every flag reaching the config, errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from features.config import FeaturesConfig
from features.sae import parse_sae_options
from tests.features.synthetic import direction, feature_list, gemmascope_sae, write_run

FEATURES = feature_list([(16, 14439), (17, 9162)], [(19, 5441)])


def invoke(*args: str, catch_exceptions: bool = False):
    return CliRunner().invoke(cli, ["features", *args], catch_exceptions=catch_exceptions)


@pytest.fixture
def data(tmp_path):
    run = write_run(tmp_path / "data" / "phase7_3", features=FEATURES, n_tasks=60, n_passed=20, d_model=16)
    return tmp_path / "data", run


def test_default_paths_under_data_dir_and_the_stand_ins(data, monkeypatch):
    data_dir, run = data
    monkeypatch.setenv("PVA_PHASE2_10_DIR", str(run.feature_list.parent))
    result = invoke("--data-dir", str(data_dir), "--demo-saes")
    assert result.exit_code == 0, result.output
    out = data_dir / "phase7_3" / "features"
    assert (out / "feature_scores.parquet").is_file() and (out / "features_metadata.json").is_file()
    assert not (data_dir / "models").exists()  # the stand-ins are built, never stored
    expected = "features: 6 of 6 feature x hook-point rows scored on 60 tasks (20 passed) (demo stand-in SAEs"
    assert expected in result.output


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
    strict = invoke("--data-dir", str(data_dir), "--sae", f"16={sae16}", "--sae", f"17={sae17}", "--require-all")
    assert strict.exit_code == 2 and "--require-all: 1 layer(s) without an SAE (layer 19:" in strict.output
    bad = invoke("--data-dir", str(data_dir), "--sae", "16")
    assert bad.exit_code == 2 and "expected LAYER=PATH" in bad.output
    missing = invoke("--data-dir", str(data_dir), "--sae", f"16={tmp_path / 'nope.npz'}")
    assert missing.exit_code == 2 and "file not found" in missing.output


class Done:
    """What the stand-in for the stage returns."""

    def summary(self) -> str:
        return "ok"


# A value per field, other than its default, as typed and as the config holds it.
FLAG_VALUES = {
    "data_dir": ("--data-dir", "/tmp/d", Path("/tmp/d")),
    "overwrite": ("--overwrite", None, True),
    "model_type": ("--model-type", "base", "base"),
    "dataset_path": ("--dataset", "/tmp/x.parquet", Path("/tmp/x.parquet")),
    "activations_dir": ("--activations-dir", "/tmp/acts", Path("/tmp/acts")),
    "output_dir": ("--output-dir", "/tmp/out", Path("/tmp/out")),
    "phase2_10_dir": ("--phase2-10-dir", "/tmp/p10", Path("/tmp/p10")),
    "phase2_5_dir": ("--phase2-5-dir", "/tmp/p5", Path("/tmp/p5")),
    "sae_options": ("--sae", "16=/tmp/s.npz", ("16=/tmp/s.npz",)),
    "sae_repo": ("--sae-repo", "me/my-saes", "me/my-saes"),
    "demo_saes": ("--demo-saes", None, True),
    "require_all": ("--require-all", None, True),
    "seed": ("--seed", "7", 7),
    "token_vectors": ("--token-vectors", "0", 0),
    "compare_dir": ("--compare-activations", "/tmp/other", Path("/tmp/other")),
    "compare_dataset": ("--compare-dataset", "/tmp/o.parquet", Path("/tmp/o.parquet")),
    "compare_site": ("--compare-site", "resid_post", "resid_post"),
}


def test_every_field_has_a_flag_case():
    assert set(FLAG_VALUES) == {f.name for f in fields(FeaturesConfig)}


@pytest.mark.parametrize("name", sorted(FLAG_VALUES))
def test_each_flag_reaches_the_config(name, monkeypatch):
    flag, text, expected = FLAG_VALUES[name]
    seen = []

    monkeypatch.setattr("features.stage.run", lambda config: seen.append(config) or Done())
    result = invoke(flag, *([text] if text is not None else []))
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert getattr(config, name) == expected
    assert all(getattr(config, f.name) == getattr(FeaturesConfig(), f.name) for f in fields(FeaturesConfig)
               if f.name not in (name, "data_dir"))


def test_repeated_sae_flags_and_the_library_paths(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("features.stage.run", lambda config: seen.append(config) or Done())
    sae = tmp_path / "s.npz"
    sae.write_bytes(b"x")
    assert invoke("--sae", f"16={sae}", "--sae", f"19={sae}", "--data-dir", str(tmp_path)).exit_code == 0
    (config,) = seen
    assert parse_sae_options(config.sae_options) == {16: sae, 19: sae}
    assert config.dataset == tmp_path / "phase7_3" / "dataset_instruct_temp_0_0.parquet"
    assert config.activations == tmp_path / "phase7_3" / "activations"
    assert config.folder == tmp_path / "phase7_3" / "features"


def test_missing_feature_list_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv("PVA_PHASE2_10_DIR", raising=False)
    monkeypatch.delenv("PVA_PHASE2_5_DIR", raising=False)
    result = invoke("--data-dir", str(tmp_path), catch_exceptions=True)
    assert result.exit_code == 2 and "no top_20_features.json or top_20_latents.json" in result.output
    assert not (tmp_path / "phase7_3" / "features").exists()


def test_run_model_type_base_feeds_evaluate_features_and_report(tmp_path, monkeypatch):
    """`run --model google/gemma-2-2b --model-type base`: every stage reads and writes the base dataset."""
    import pipeline.run as run_module

    seen = {}
    monkeypatch.setattr(run_module, "check_sandbox", lambda values: None)
    monkeypatch.setattr(run_module, "run_pipeline", lambda configs, **kw: seen.setdefault("configs", configs) and [])
    result = CliRunner().invoke(cli, ["run", "--data-dir", str(tmp_path), "--model", "google/gemma-2-2b",
                                      "--model-type", "base"])
    assert result.exit_code == 0, result.output
    by_stage = {c.STAGE: c for c in seen["configs"]}
    base = tmp_path / "phase7_3" / "dataset_base_temp_0_0.parquet"
    assert by_stage["evaluate"].dataset_path == base
    assert by_stage["features"].dataset == base and by_stage["report"].dataset == base
    assert by_stage["generate"].model == "google/gemma-2-2b"
