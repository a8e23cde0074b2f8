"""`python cli.py replay-activations`: every flag reaches the config; bad input is one line, exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

import replay.stage
from artifacts.files import read_json
from cli import cli
from replay.config import ReplayConfig
from tests.replay.conftest import tiny_generations_dir  # noqa: F401  (fixture shared with tests/replay)

# One command-line value per setting, and the config value it must become.
FLAG_VALUES = {
    "phase2_10_dir": (["--phase2-10-dir", "/a/p10"], Path("/a/p10")),
    "phase2_5_dir": (["--phase2-5-dir", "/a/p5"], Path("/a/p5")),
    "layers": (["--layers", "3,1"], "3,1"),
    "data_dir": (["--data-dir", "/a/data"], Path("/a/data")),
    "overwrite": (["--overwrite"], True),
    "generations_path": (["--generations", "/a/g.parquet"], Path("/a/g.parquet")),
    "output_dir": (["--output-dir", "/a/out"], Path("/a/out")),
    "model": (["--model", "org/model"], "org/model"),
    "dtype": (["--dtype", "bfloat16"], "bfloat16"),
    "device": (["--device", "cpu"], "cpu"),
    "hook_point": (["--hook-point", "resid_post"], "resid_post"),
    "activation_format": (["--activation-format", "both"], "both"),
    "batch_size": (["--batch-size", "3"], 3),
    "verify": (["--verify", "2"], 2),
}


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["replay-activations", *args], catch_exceptions=False)


def test_every_setting_has_a_flag_case():
    assert set(FLAG_VALUES) == {f.name for f in fields(ReplayConfig)}


@pytest.mark.parametrize("name", sorted(FLAG_VALUES))
def test_each_flag_reaches_the_config(name, monkeypatch):
    seen = []

    class Done:
        def summary(self) -> str:
            return "done"

    monkeypatch.setattr(replay.stage, "run", lambda config: seen.append(config) or Done())
    args, expected = FLAG_VALUES[name]
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert getattr(config, name) == expected
    others = {f.name: getattr(ReplayConfig(data_dir=config.data_dir), f.name) for f in fields(ReplayConfig)}
    assert {k: v for k, v in others.items() if k != name} == {
        f.name: getattr(config, f.name) for f in fields(ReplayConfig) if f.name != name
    }  # the other settings keep their defaults


def _meta(stage: Path) -> dict:
    return read_json(stage / "activations" / "activations_metadata.json")


@pytest.mark.slow  # loads the tiny Gemma-2 in Hugging Face and TransformerLens
def test_a_run_from_the_command_line(tiny_generations_dir, tiny_gemma2, tmp_path):
    gen = tmp_path / "gen"
    shutil.copytree(tiny_generations_dir, gen)
    out = tmp_path / "out"
    common = ["--generations", str(gen / "generations.parquet"), "--output-dir", str(out), "--device", "cpu",
              "--phase2-10-dir", str(tmp_path / "none"), "--phase2-5-dir", str(tmp_path / "none")]
    result = _invoke(
        *common, "--layers", "0,2", "--hook-point", "resid_pre", "--batch-size", "2", "--dtype", "float32", "--verify", "1",
        "--activation-format", "both",
    )
    assert result.exit_code == 0, result.output
    assert "replayed 6 of 6 tasks" in result.output and "verify 1 tasks vs Hugging Face" in result.output
    assert "feature_layer_vectors.npz" in result.output and "resid_post" in result.output
    meta = _meta(out)
    assert (meta["layers"], meta["hook_point"], meta["batch_size"], meta["dtype"], meta["device"]) == ([0, 2], "resid_pre", 2, "float32", "cpu")
    assert meta["verify"]["n_tasks"] == 1 and meta["generations_file"] == str(gen / "generations.parquet")
    assert meta["activation_format"] == "both" and len(list((out / "activations" / "task_activations").glob("*.safetensors"))) == 12

    copy = shutil.copytree(tiny_gemma2, tmp_path / "model-copy")
    result = _invoke(*common, "--layers", "0,2", "--hook-point", "resid_post", "--model", str(copy), "--overwrite")
    assert result.exit_code == 0, result.output
    meta = _meta(out)
    assert (meta["model"], meta["hook_point"], meta["n_replayed"], meta["verify"]) == (str(copy), "resid_post", 6, None)


@pytest.mark.slow
def test_defaults_come_from_data_dir_and_the_sae_analysis(tiny_generations_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_generations_dir, data / "phase7_3")
    analysis = tmp_path / "analysis"
    analysis.mkdir()
    top = {"correct": [{"feature_idx": 7, "layer": 3}], "incorrect": [{"feature_idx": 9, "layer": 1}]}
    (analysis / "top_20_features.json").write_text(json.dumps(top))
    result = _invoke("--data-dir", str(data), "--phase2-10-dir", str(analysis), "--phase2-5-dir", str(tmp_path / "none"), "--device", "cpu")
    assert result.exit_code == 0, result.output
    meta = _meta(data / "phase7_3")
    assert meta["layers"] == [1, 3] and meta["best_layers"]["correct_feature_idx"] == 7
    assert meta["dtype"] == "float32"  # the generations' dtype
    assert meta["hook_point"] == "resid_pre" and meta["activation_format"] == "npz"  # the defaults
    assert meta["feature_vectors"]["layers"] == [1, 3]
    assert len(list((data / "phase7_3" / "activations" / "task_activations").iterdir())) == 12
    assert (data / "phase7_3" / ".records" / "replay-activations.json").is_file()


@pytest.mark.slow  # reads the tiny model's config
def test_bad_input_is_one_line_exit_2(tiny_generations_dir, tmp_path, repo_root):
    cases = {
        "--layers 0,9": (["--generations", str(tiny_generations_dir / "generations.parquet"), "--layers", "0,9"], "outside model"),
        "missing file": (["--generations", str(tmp_path / "none.parquet"), "--layers", "1"], "generations file not found"),
        "bad layers": (["--layers", "x"], "--layers 'x': expected comma-separated integers"),
    }
    for name, (args, expected) in cases.items():
        proc = subprocess.run(
            [sys.executable, "cli.py", "replay-activations", "--output-dir", str(tmp_path / "out"), "--device", "cpu", *args],
            cwd=repo_root, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        )
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], (name, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "out").exists()
