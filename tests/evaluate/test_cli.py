"""`python cli.py evaluate` through click: default paths, every flag reaching the config, errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import evaluate.stage
from artifacts.errors import InputError
from artifacts.feature_list import resolve_layers
from artifacts.files import write_json
from cli import cli
from evaluate.config import EvaluateConfig
from evaluate.stage import PROCESS_WARNING
from problems.split import build_validation_split

requires_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def invoke(*args: str):
    return CliRunner().invoke(cli, ["evaluate", *args], catch_exceptions=False)


@pytest.fixture
def data_dir(tmp_path, mbpp_path, validation_ids_path, phase2_10_dir):
    """A data folder with the problems, two generations (one right, one wrong) and the replay's metadata."""
    data = tmp_path / "data"
    build_validation_split(mbpp_path=mbpp_path, task_ids_path=validation_ids_path, output_dir=data / "phase0_1")
    problems = pd.read_parquet(data / "phase0_1" / "validation_mbpp.parquet")
    ids = problems["task_id"].iloc[:2].tolist()
    (data / "phase7_3").mkdir(parents=True)
    pd.DataFrame({"task_id": ids, "completion": [problems["code"].iloc[0], "print('hi')"]}).to_parquet(
        data / "phase7_3" / "generations.parquet"
    )
    best = resolve_layers([phase2_10_dir], None).to_metadata()
    write_json(data / "phase7_3" / "activations" / "activations_metadata.json",
               {"hook_point": "resid_pre", "layers": [16, 19], **best})
    return data


def test_the_command_has_one_option_per_setting():
    command = cli.get_command(None, "evaluate")
    assert [p.name for p in command.params if p.name != "help"] == [f.name for f in fields(EvaluateConfig)]


@requires_bwrap
def test_default_paths_under_data_dir(data_dir):
    result = invoke("--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    out = data_dir / "phase7_3"
    assert f"wrote {out / 'dataset_instruct_temp_0_0.parquet'} (2 tasks, 1 passed, pass rate 50.0%" in result.stdout
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["sandbox"]["kind"] == "bwrap" and meta["sandbox"]["limits"]["timeout_s"] == 10.0
    assert meta["extraction_layers"] == [16, 19] and meta["best_layers"]["correct"] == 16  # copied from the replay
    assert meta["problems_file"] == str(data_dir / "phase0_1" / "validation_mbpp.parquet")
    manifest = json.loads((out / "phase_output.json").read_text())
    assert manifest["outputs"]["primary"] == "dataset_instruct_temp_0_0.parquet"
    assert manifest["outputs"]["activations"] == "activations"
    assert PROCESS_WARNING not in result.output


# (flag and value given, the config field, the value it must hold)
FLAGS = [
    (["--data-dir", "elsewhere"], "data_dir", Path("elsewhere")),
    (["--overwrite"], "overwrite", True),
    (["--generations", "g.jsonl"], "generations_path", Path("g.jsonl")),
    (["--completion-column", "generated_code"], "completion_column", "generated_code"),
    (["--model-type", "base"], "model_type", "base"),
    (["--verdict", "legacy"], "verdict", "legacy"),
    (["--problems", "p.parquet"], "problems_path", Path("p.parquet")),
    (["--output-dir", "out"], "output_dir", Path("out")),
    (["--workers", "3"], "workers", 3),
    (["--timeout", "2.5"], "timeout", 2.5),
    (["--sandbox", "process"], "sandbox", "process"),
]


def test_every_setting_has_a_flag_case():
    assert sorted(name for _, name, _ in FLAGS) == sorted(f.name for f in fields(EvaluateConfig))


@pytest.fixture
def captured(monkeypatch):
    """The configs the command would run (nothing runs)."""
    seen: list[EvaluateConfig] = []

    class Done:
        def summary(self) -> str:
            return "done"

    monkeypatch.setattr(evaluate.stage, "run", lambda config: seen.append(config) or Done())
    return seen


@pytest.mark.parametrize(("args", "name", "value"), FLAGS, ids=[name for _, name, _ in FLAGS])
def test_every_flag_reaches_the_config(captured, args, name, value):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    (config,) = captured
    assert getattr(config, name) == value
    default = EvaluateConfig()
    assert all(getattr(config, f.name) == getattr(default, f.name) for f in fields(config) if f.name != name)


@pytest.mark.parametrize("spelling", ["instruction-tuned", "instruction_tuned"])
def test_both_instruct_spellings_mean_the_same(captured, spelling):
    # Issue 18: the earlier tool's spelling is written; this tool's old one is still accepted.
    assert invoke("--model-type", spelling).exit_code == 0
    assert captured[0].model_type == "instruction-tuned" == EvaluateConfig().model_type
    assert captured[0].dataset_path.name == "dataset_instruct_temp_0_0.parquet"


@pytest.mark.parametrize("flag", ["--layers", "--phase2-10-dir", "--phase2-5-dir"])
def test_layer_options_are_gone(captured, flag):
    # The layers block is copied from the replay's metadata now.
    result = invoke(flag, "x")
    assert result.exit_code == 2 and "No such option" in result.output and not captured


def test_process_sandbox_end_to_end_with_every_scoring_flag(data_dir, tmp_path):
    generations = tmp_path / "mine.jsonl"
    frame = pd.read_parquet(data_dir / "phase7_3" / "generations.parquet")
    frame.rename(columns={"completion": "generated_code"}).to_json(generations, orient="records", lines=True)
    problems = tmp_path / "problems.parquet"
    shutil.copy(data_dir / "phase0_1" / "validation_mbpp.parquet", problems)
    out = tmp_path / "out"
    result = invoke(
        "--data-dir", str(tmp_path / "empty"), "--generations", str(generations), "--problems", str(problems),
        "--output-dir", str(out), "--workers", "1", "--timeout", "2.5", "--sandbox", "process",
        "--verdict", "legacy", "--completion-column", "generated_code", "--model-type", "base",
    )
    assert result.exit_code == 0, result.output
    assert PROCESS_WARNING in result.stderr and PROCESS_WARNING not in result.stdout
    assert f"wrote {out / 'dataset_base_temp_0_0.parquet'} (2 tasks, 1 passed" in result.stdout
    assert "under --verdict legacy" in result.stdout
    assert "passed by verdict: robust 1/2, legacy 1/2; tests decided outside the sandbox: 6/6" in result.stdout
    meta = json.loads((out / "metadata.json").read_text())
    assert (meta["verdict"], meta["completion_column"], meta["model_type"]) == ("legacy", "generated_code", "base")
    assert meta["sandbox"]["kind"] == "process" and not meta["sandbox"]["isolated"]
    assert meta["sandbox"]["limits"]["timeout_s"] == 2.5
    assert meta["extraction_layers"] is None and meta["best_layers"]["correct"] is None  # no replay beside mine.jsonl
    assert meta["generations_file"] == str(generations) and meta["problems_file"] == str(problems)
    assert json.loads((out / "phase_output.json").read_text())["outputs"]["primary"] == "dataset_base_temp_0_0.parquet"


def test_bad_input_is_one_line_exit_2(tmp_path):
    result = invoke("--data-dir", str(tmp_path), "--sandbox", "process")
    lines = [line for line in result.output.splitlines() if not line.startswith("warning:")]
    assert result.exit_code == 2 and len(lines) == 1
    assert "generations file not found" in lines[0]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model_type": "chat"}, "--model-type chat"),
        ({"verdict": "strict"}, "--verdict strict"),
        ({"sandbox": "docker"}, "--sandbox docker"),
        ({"workers": 0}, "--workers 0"),
        ({"timeout": 0.0}, "--timeout 0.0"),
    ],
)
def test_a_notebook_gets_the_cli_errors(settings, message):
    with pytest.raises(InputError, match=message):
        EvaluateConfig(**settings)
