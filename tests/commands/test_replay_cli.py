"""`python cli.py replay-activations`: every flag reaches the library; bad input is one line, exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from artifacts.files import read_json
from cli import cli
from tests.replay.conftest import tiny_generations_dir  # noqa: F401  (fixture shared with tests/replay)


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["replay-activations", *args], catch_exceptions=False)


def _meta(stage: Path) -> dict:
    return read_json(stage / "activations" / "activations_metadata.json")


def test_flags_reach_the_library(tiny_generations_dir, tiny_gemma2, tmp_path):
    gen = tmp_path / "gen"
    shutil.copytree(tiny_generations_dir, gen)
    out = tmp_path / "out"
    common = ["--generations", str(gen / "generations.parquet"), "--output-dir", str(out), "--device", "cpu"]
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


def test_bad_input_is_one_line_exit_2(tiny_generations_dir, tmp_path, repo_root):
    cases = {
        "--layers 0,9": (["--generations", str(tiny_generations_dir / "generations.parquet"), "--layers", "0,9"], "outside model"),
        "missing file": (["--generations", str(tmp_path / "none.parquet"), "--layers", "1"], "generations file not found"),
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
