"""``cli.py generate``: every flag reaches the config; the summary; bad input exits 2."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

import gen.stage
from artifacts.errors import InputError
from cli import cli
from gen.config import GenerateConfig
from gen.stage import GenerateResult


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[GenerateConfig]:
    configs: list[GenerateConfig] = []

    def fake(config: GenerateConfig) -> GenerateResult:
        configs.append(config)
        return GenerateResult(tmp_path / "g.parquet", tmp_path / "m.json", 3, 2, 1, 0, 40, 5.0, 2.0, 8.0, {})

    monkeypatch.setattr(gen.stage, "run", fake)
    return configs


FLAGS = [
    (["--model", "org/m"], "model", "org/m"),
    (["--revision", "abc"], "revision", "abc"),
    (["--start", "3"], "start", 3),
    (["--end", "9"], "end", 9),
    (["--limit", "4"], "limit", 4),
    (["--max-new-tokens", "77"], "max_new_tokens", 77),
    (["--prompt-style", "chat"], "prompt_style", "chat"),
    (["--prompt-style", "raw-double-assert"], "prompt_style", "raw-double-assert"),
    (["--stop", "eos-only"], "stop", "eos-only"),
    (["--dtype", "bfloat16"], "dtype", "bfloat16"),
    (["--max-model-len", "1024"], "max_model_len", 1024),
    (["--tensor-parallel-size", "2"], "tensor_parallel_size", 2),
    (["--data-parallel-size", "3"], "data_parallel_size", 3),
    (["--backend", "ray"], "backend", "ray"),
    (["--output-dir", "/x/out"], "output_dir", Path("/x/out")),
    (["--problems", "/x/p.parquet"], "problems_path", Path("/x/p.parquet")),
    (["--overwrite"], "overwrite", True),
    (["--deterministic"], "deterministic", True),
    (["--enforce-eager"], "enforce_eager", True),
    (["--no-enforce-eager"], "enforce_eager", False),
    (["--commit-every", "8"], "commit_every", 8),
    (["--commit-seconds", "2.5"], "commit_seconds", 2.5),
    (["--chunk-size", "4"], "chunk_size", 4),
    (["--seed", "5"], "seed", 5),
    (["--data-dir", "/x/data"], "data_dir", Path("/x/data")),
]


@pytest.mark.parametrize(("args", "key", "value"), FLAGS, ids=[" ".join(f[0]) for f in FLAGS])
def test_flag_reaches_the_config(captured: list, args: list[str], key: str, value: object) -> None:
    result = CliRunner().invoke(cli, ["generate", *args])
    assert result.exit_code == 0, result.output
    assert getattr(captured[0], key) == value
    assert "problems 2 generated, 1 already done, 0 excluded | tokens 40" in result.output
    assert "tok/s" in result.output


def test_every_setting_has_a_flag_test() -> None:
    assert {f.name for f in fields(GenerateConfig)} == {key for _, key, _ in FLAGS}


def test_defaults_follow_the_data_dir(captured: list, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["generate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    config = captured[0]
    assert config.problems == tmp_path / "phase0_1" / "validation_mbpp.parquet"
    assert config.folder == tmp_path / "phase7_3" and config.record_dir() == tmp_path / "phase7_3"
    assert config.model == "google/gemma-2-2b-it" and config.max_new_tokens == 2000
    assert config.commits_every == 16 and config.commit_seconds == 30.0 and config.stop == "end-of-turn"
    assert config.dtype is None and config.prompt_style == "raw"
    assert config.enforce_eager is None  # the stage picks: eager on CPU, compiled on GPU
    assert config.backend == "embedded" and not config.uses_ray
    assert config.chunk_size is None


def test_chunk_size_is_a_deprecated_alias_of_commit_every(captured: list) -> None:
    CliRunner().invoke(cli, ["generate", "--chunk-size", "4", "--commit-every", "9"])
    assert captured[0].commits_every == 4


def test_identity_settings_are_those_that_change_the_tokens() -> None:
    # Operational knobs may change between a run and its resume; these may not.
    assert set(GenerateConfig().settings(identity_only=True)) == {
        "model", "revision", "start", "end", "limit", "max_new_tokens", "prompt_style", "stop", "dtype",
        "max_model_len", "deterministic", "seed"}


def test_the_summary_names_the_engine_concurrency(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(
        gen.stage, "run",
        lambda config: GenerateResult(tmp_path / "g.parquet", tmp_path / "m.json", 3, 3, 0, 0, 40, 5.0, 2.0, 8.0, {},
                                      n_commits=1, max_num_seqs=256),
    )
    result = CliRunner().invoke(cli, ["generate"])
    assert "at most 256 at once" in result.output and "20.0 tok/s" in result.output


def test_nothing_to_do_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(
        gen.stage, "run",
        lambda config: GenerateResult(tmp_path / "g.parquet", tmp_path / "m.json", 3, 0, 3, 0, 0, 0.0, 0.0, 1.0, {}),
    )
    result = CliRunner().invoke(cli, ["generate"])
    assert f"nothing to do: all 3 selected problems are already in {tmp_path / 'g.parquet'}" in result.output


def test_input_error_exits_2_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(config):
        raise InputError("--model x: model folder not found")

    monkeypatch.setattr(gen.stage, "run", fail)
    result = CliRunner().invoke(cli, ["generate"])
    assert result.exit_code == 2
    assert "model folder not found" in result.output and "Traceback" not in result.output


def test_a_bad_value_the_config_checks_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["generate", "--data-dir", str(tmp_path), "--prompt-style", "chat",
                                      "--limit", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not (tmp_path / "phase7_3").exists()
