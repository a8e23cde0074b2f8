"""`python cli.py evaluate` through click: default paths, every flag reaching the library, errors."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from commands.evaluate import PROCESS_WARNING, evaluate
from problems.split import build_validation_split

requires_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def invoke(*args: str):
    return CliRunner().invoke(evaluate, list(args), catch_exceptions=False)


def test_registered_in_cli():
    from cli import cli

    assert cli.get_command(None, "evaluate") is evaluate


@pytest.fixture
def data_dir(tmp_path, mbpp_path, validation_ids_path, monkeypatch, shared_data):
    """A data folder with the problems and two generations (one right, one wrong)."""
    data = tmp_path / "data"
    build_validation_split(mbpp_path=mbpp_path, task_ids_path=validation_ids_path, output_dir=data / "phase0_1")
    problems = pd.read_parquet(data / "phase0_1" / "validation_mbpp.parquet")
    ids = problems["task_id"].iloc[:2].tolist()
    (data / "phase7_3").mkdir(parents=True)
    pd.DataFrame({"task_id": ids, "completion": [problems["code"].iloc[0], "print('hi')"]}).to_parquet(
        data / "phase7_3" / "generations.parquet"
    )
    monkeypatch.setenv("PVA_PHASE2_10_DIR", str(shared_data / "pva_reference" / "phase2_10"))
    return data


@requires_bwrap
def test_default_paths_under_data_dir(data_dir):
    result = invoke("--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    out = data_dir / "phase7_3"
    assert f"wrote {out / 'dataset_instruct_temp_0_0.parquet'} (2 tasks, 1 passed, pass rate 50.0%" in result.output
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["sandbox"]["kind"] == "bwrap" and meta["sandbox"]["limits"]["timeout_s"] == 10.0
    assert meta["extraction_layers"] == [16, 19]


def test_every_flag_reaches_the_library(data_dir, tmp_path):
    generations = tmp_path / "mine.jsonl"
    pd.read_parquet(data_dir / "phase7_3" / "generations.parquet").to_json(generations, orient="records", lines=True)
    problems = tmp_path / "problems.parquet"
    shutil.copy(data_dir / "phase0_1" / "validation_mbpp.parquet", problems)
    out = tmp_path / "out"
    frame = pd.read_json(generations, lines=True)
    frame.rename(columns={"completion": "generated_code"}).to_json(generations, orient="records", lines=True)
    result = invoke(
        "--data-dir", str(tmp_path / "empty"), "--generations", str(generations), "--problems", str(problems),
        "--output-dir", str(out), "--workers", "1", "--timeout", "2.5", "--sandbox", "process",
        "--layers", "3,4", "--phase2-10-dir", str(tmp_path / "none"), "--phase2-5-dir", str(tmp_path / "none"),
        "--verdict", "legacy", "--completion-column", "generated_code", "--model-type", "base",
    )
    assert result.exit_code == 0, result.output
    assert PROCESS_WARNING in result.output
    assert f"wrote {out / 'dataset_base_temp_0_0.parquet'} (2 tasks, 1 passed" in result.output
    assert "under --verdict legacy" in result.output
    assert "passed by verdict: robust 1/2, legacy 1/2; tests decided outside the sandbox: 6/6" in result.output
    meta = json.loads((out / "metadata.json").read_text())
    assert (meta["verdict"], meta["completion_column"], meta["model_type"]) == ("legacy", "generated_code", "base")
    assert meta["sandbox"]["kind"] == "process" and not meta["sandbox"]["isolated"]
    assert meta["sandbox"]["limits"]["timeout_s"] == 2.5
    assert meta["extraction_layers"] == [3, 4] and meta["best_layers"]["correct"] is None
    assert meta["generations_file"] == str(generations) and meta["problems_file"] == str(problems)


def test_phase2_dirs_reach_the_library(data_dir, tmp_path, shared_data, monkeypatch):
    monkeypatch.delenv("PVA_PHASE2_10_DIR")
    monkeypatch.delenv("PVA_PHASE2_5_DIR", raising=False)
    out = tmp_path / "out"
    args = ["--data-dir", str(data_dir), "--output-dir", str(out), "--sandbox", "process",
            "--generations", str(data_dir / "phase7_3" / "generations.parquet")]
    # No replay metadata and no SAE analysis anywhere: scoring needs no layers (issue 10).
    unknown = invoke(*args)
    assert unknown.exit_code == 0, unknown.output
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["extraction_layers"] is None and meta["best_layers"]["correct"] is None
    result = invoke(*args, "--phase2-5-dir", str(shared_data / "pva_reference" / "phase2_5"))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metadata.json").read_text())["extraction_layers"] == [16, 25]


def test_bad_input_is_one_line_exit_2(tmp_path):
    result = invoke("--data-dir", str(tmp_path), "--sandbox", "process")
    lines = [line for line in result.output.splitlines() if not line.startswith("warning:")]
    assert result.exit_code == 2 and len(lines) == 1
    assert "generations file not found" in lines[0] or "problems file not found" in lines[0]
