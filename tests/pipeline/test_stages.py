"""Options derived from the stage configs: every field reaches its config from its command and from `run`."""

from __future__ import annotations

import enum
import typing
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli as cli_module
from artifacts.errors import InputError
from artifacts.settings import describe, field_type
from pipeline.options import WIRED, derive_run_options, flag_of, stage_values
from pipeline.run import apply_preset, build_configs
from pipeline.stages import PIPELINE, STAGES

# `run`'s option names before the stages were derived from configs (they must stay).
RUN_OPTIONS_BEFORE = {
    "activation_format", "commit_every", "commit_seconds", "compare", "compare_activations", "compare_dataset",
    "compare_site", "completion_column", "data_dir", "data_parallel_size", "demo_saes", "deterministic", "device",
    "dtype", "end", "enforce_eager", "features_overwrite", "features_seed", "generate_overwrite", "generate_seed",
    "hook_point", "layers", "limit", "max_model_len", "max_new_tokens", "mbpp", "model", "model_type",
    "phase2_10_dir", "phase2_5_dir", "prompt_style", "replay_batch_size", "replay_model", "replay_overwrite",
    "require_all", "revision", "sae", "sae_repo", "sandbox", "split_seed", "start", "stop", "task_ids",
    "tensor_parallel_size", "timeout", "verdict", "verify", "workers",
}


def _configs():
    return {s.name: s.config_class() for s in PIPELINE}


def _sample(cls, f, tmp_path: Path):
    """A value the field accepts that differs from its default, as a user would give it."""
    meta = describe(f)
    kind = field_type(cls, f.name)
    default = None if f.default is MISSING else f.default
    if isinstance(default, enum.Enum):
        default = default.value
    if meta.choices:
        return [c for c in meta.choices if c != default][0]
    if kind is bool:
        return not default if isinstance(default, bool) else True
    if kind is Path:
        return tmp_path / f"{f.name}.x"
    if kind in (int, float):
        base = meta.minimum if meta.minimum is not None else 0
        value = base + 3 if kind is int else base + 2.5
        return value if value != default else value + 1
    if typing.get_origin(kind) is tuple:
        return ("16=x.npz",)
    return "16,19" if f.name == "layers" else "x1"


def _cli_words(flag: str, value) -> list[str]:
    if isinstance(value, bool):
        return [flag] if value else [f"--no-{flag[2:]}"]
    if isinstance(value, tuple):
        return [w for v in value for w in (flag, str(v))]
    return [flag, str(value)]


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_flag_of_a_stage_command_reaches_its_config(stage, tmp_path, monkeypatch):
    entry = STAGES[stage]
    cls = entry.config_class()
    for f in fields(cls):
        value = _sample(cls, f, tmp_path)
        seen = {}
        monkeypatch.setattr(type(entry), "run", lambda self, config: seen.setdefault("config", config) and _Done())
        result = CliRunner().invoke(cli_module.cli, [stage, *_cli_words(flag_of(cls, f.name), value)])
        if result.exit_code == 2 and "config" not in seen:  # a value __post_init__ refuses: one line, exit 2
            assert result.output.count("\n") <= 3 and "Traceback" not in result.output, result.output
            continue
        assert result.exit_code == 0, (f.name, result.output)
        got = getattr(seen["config"], f.name)
        assert (got.value if isinstance(got, enum.Enum) else got) == value, f.name


class _Done:
    def summary(self) -> str:
        return "done"


def test_run_keeps_every_option_name_it_had():
    names = set(derive_run_options(list(_configs().items())))
    assert RUN_OPTIONS_BEFORE <= names, f"run options lost: {RUN_OPTIONS_BEFORE - names}"


def test_every_run_option_reaches_each_stage_it_names(tmp_path):
    configs = _configs()
    options = derive_run_options(list(configs.items()))
    covered = set()
    for name, option in options.items():
        stage, field_name = option.targets[0]
        f = next(f for f in fields(configs[stage]) if f.name == field_name)
        value = _sample(configs[stage], f, tmp_path)
        for target_stage, target in option.targets:
            values = stage_values(target_stage, options, {name: value})
            try:
                config = configs[target_stage].from_mapping(values)
            except InputError:
                covered.add((target_stage, target))  # refused by the config's own check: it arrived
                continue
            got = getattr(config, target)
            assert (got.value if isinstance(got, enum.Enum) else got) == value, (name, target_stage)
            covered.add((target_stage, target))
    every = {(s, f.name) for s, c in configs.items() for f in fields(c) if f.name not in WIRED}
    assert every == covered, f"stage settings without a run option: {every - covered}"


def test_names_that_clash_are_prefixed_and_shared_ones_agree():
    configs = _configs()
    options = derive_run_options(list(configs.items()))
    assert {"split_seed", "generate_seed", "model", "replay_model", "revision", "replay_batch_size"} <= set(options)
    for name in ("dtype", "phase2_10_dir", "data_dir"):
        targets = options[name].targets
        assert len(targets) > 1
        assert len({str(field_type(configs[s], f)) for s, f in targets}) == 1, name


def test_run_hands_values_to_the_stage_configs(tmp_path, monkeypatch):
    import pipeline.run as run_module

    seen = {}
    monkeypatch.setattr(run_module, "check_sandbox", lambda values: None)
    monkeypatch.setattr(run_module, "run_pipeline", lambda configs, **kw: seen.setdefault("configs", configs) and [])
    result = CliRunner().invoke(cli_module.cli, [
        "run", "--data-dir", str(tmp_path), "--limit", "7", "--layers", "3", "--deterministic", "--workers", "1",
        "--generate-seed", "5", "--split-seed", "9", "--revision", "abc"])
    assert result.exit_code == 0, result.output
    by_stage = {c.STAGE: c for c in seen["configs"]}
    assert by_stage["split"].seed == 9
    gen = by_stage["generate"]
    assert (gen.seed, gen.revision, gen.limit, gen.deterministic) == (5, "abc", 7, True)
    assert by_stage["evaluate"].workers == 1
    assert by_stage["replay-activations"].layers == "3"
    assert all(c.data_dir == tmp_path for c in seen["configs"])


def test_demo_preset_fills_only_what_was_not_given(tmp_path):
    values, prepare = apply_preset({}, "demo", data_dir=tmp_path)
    assert Path(values["model"]) == tmp_path / "models" / "smollm2-135m-instruct" and prepare
    assert values["limit"] == 20 and values["enforce_eager"] is True
    own, prepare = apply_preset({"model": "x", "limit": 5}, "demo", data_dir=tmp_path)
    assert own["model"] == "x" and own["limit"] == 5 and not prepare
    with pytest.raises(InputError):
        apply_preset({}, "huge", data_dir=tmp_path)


def test_demo_preset_prepares_the_model_first_without_an_engine(tmp_path):
    options = derive_run_options(list(_configs().items()))
    values, prepare = apply_preset({"data_dir": tmp_path}, "demo", data_dir=tmp_path)
    configs = build_configs(values, options, prepare_demo_model=prepare)
    assert configs[0].STAGE == "prepare-demo-model" and configs[0].verify is False
    assert next(c for c in configs if c.STAGE == "generate").enforce_eager is True
