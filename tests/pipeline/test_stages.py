"""`run` takes every stage option once and hands it to the stage's own parser unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from artifacts.errors import InputError
from pipeline.options import WIRED, stage_argv
from pipeline.run import Stage, apply_preset, build_stages, run_pipeline


def _sample(opt: click.Option, tmp_path: Path):
    """A value the stage's parser accepts for ``opt`` and that differs from its default."""
    kind = opt.type
    if opt.is_flag:
        return not bool(opt.default) if isinstance(opt.default, bool) else True
    if isinstance(kind, click.Choice):
        choices = [c for c in kind.choices if c != opt.default]
        return choices[-1]
    if isinstance(kind, click.Path):
        return tmp_path / f"{opt.name}.x"
    if isinstance(kind, click.types.IntParamType):
        return (kind.min or 0) + 3 if isinstance(kind, click.IntRange) else 3
    if isinstance(kind, click.types.FloatParamType):
        return (kind.min or 0) + 2.5 if isinstance(kind, click.FloatRange) else 2.5
    value = "16,19" if opt.name == "layers" else "x1"
    return (value,) if opt.multiple else value


@pytest.fixture(scope="module")
def run_options():
    from commands.run import RUN_OPTIONS, stage_commands

    return RUN_OPTIONS, stage_commands()


def test_every_stage_option_reaches_its_stage(run_options, tmp_path):
    options, stages = run_options
    covered = set()
    for name, option in options.items():
        stage, opt = option.targets[0]
        value = _sample(opt, tmp_path)
        for target_stage, target in option.targets:
            command = dict(stages)[target_stage]
            argv = stage_argv(target_stage, options, {name: value})
            ctx = command.make_context(target_stage, argv, resilient_parsing=False)
            parsed = ctx.params[target.name]
            expected = value if not isinstance(target.type, click.Path) else Path(value)
            if isinstance(parsed, tuple) and not isinstance(expected, tuple):
                expected = (expected,)
            assert parsed == expected, (name, target_stage, argv)
            covered.add((target_stage, target.name))
    every = {(s, p.name) for s, c in stages for p in c.params
             if isinstance(p, click.Option) and p.name not in WIRED}
    assert every == covered, f"stage options without a run option: {every - covered}"


def test_names_that_clash_are_prefixed_and_shared_ones_agree(run_options):
    options, stages = run_options
    assert {"split_seed", "generate_seed", "model", "replay_model", "revision", "replay_batch_size"} <= set(options)
    for name in ("dtype", "layers", "data_dir"):
        targets = options[name].targets
        assert len(targets) > 1
        assert len({type(t.type) for _, t in targets}) == 1, name


def test_run_cli_hands_values_to_the_stages(tmp_path, monkeypatch):
    import commands.run as run_cmd
    from cli import cli

    seen = {}
    monkeypatch.setattr(run_cmd, "check_sandbox", lambda values: None)
    monkeypatch.setattr(run_cmd, "run_pipeline", lambda stages, **kw: seen.setdefault("stages", stages) and [])
    result = CliRunner().invoke(cli, ["run", "--data-dir", str(tmp_path), "--limit", "7", "--layers", "3",
                                      "--deterministic", "--workers", "1", "--generate-seed", "5",
                                      "--split-seed", "9", "--revision", "abc"])
    assert result.exit_code == 0, result.output
    argv = {s.name: s.argv for s in seen["stages"]}
    assert argv["split"][argv["split"].index("--seed") + 1] == "9"
    gen = argv["generate"]
    assert gen[gen.index("--seed") + 1] == "5" and gen[gen.index("--revision") + 1] == "abc"
    assert gen[gen.index("--limit") + 1] == "7" and "--deterministic" in gen and "--model" not in gen
    assert argv["evaluate"][argv["evaluate"].index("--workers") + 1] == "1"
    assert argv["replay-activations"][argv["replay-activations"].index("--layers") + 1] == "3"


def test_demo_preset_fills_only_what_was_not_given(tmp_path):
    values, prepare = apply_preset({}, "demo", data_dir=tmp_path)
    assert Path(values["model"]) == tmp_path / "models" / "smollm2-135m-instruct" and prepare
    assert values["limit"] == 20 and values["enforce_eager"] is True
    own, prepare = apply_preset({"model": "x", "limit": 5}, "demo", data_dir=tmp_path)
    assert own["model"] == "x" and own["limit"] == 5 and not prepare
    with pytest.raises(InputError):
        apply_preset({}, "huge", data_dir=tmp_path)


def test_demo_model_is_prepared_without_starting_an_engine(run_options, tmp_path):
    options, _ = run_options
    values, prepare = apply_preset({}, "demo", data_dir=tmp_path)
    stages = build_stages(tmp_path, values, options, prepare_demo_model=prepare)
    assert stages[0].name == "prepare-demo-model" and "--no-verify" in stages[0].argv
    assert "--enforce-eager" in next(s.argv for s in stages if s.name == "generate")


def test_split_skipped_when_problems_exist(run_options, tmp_path):
    options, _ = run_options
    split = next(st for st in build_stages(tmp_path, {}, options) if st.name == "split")
    assert split.needed()
    (tmp_path / "phase0_1").mkdir()
    (tmp_path / "phase0_1" / "validation_mbpp.parquet").write_bytes(b"x")
    assert not split.needed()


def test_finished_stage_is_skipped_until_an_input_or_its_command_changes(tmp_path):
    """The completeness key: same argv, inputs and outputs -> no process; any change -> rerun."""
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("a")
    script = f"import pathlib; pathlib.Path({str(out)!r}).write_text(pathlib.Path({str(src)!r}).read_text())"
    calls = []

    def run(argv):
        calls.append(argv)
        stage = Stage("report", argv, inputs=(src,), outputs=(out,), stamped=True)
        return run_pipeline([stage], stamps_dir=tmp_path / ".run", python=("python3", "-c", script), echo=lambda _: None)

    assert run(["a"])[0].ran
    assert not run(["a"])[0].ran  # nothing changed: skipped without a process
    assert run(["b"])[0].ran  # another command line
    src.write_text("changed")
    assert run(["b"])[0].ran  # another input
    out.write_text("edited by hand")
    assert run(["b"])[0].ran  # an output changed since
    assert json.loads((tmp_path / ".run" / "report.json").read_text())["argv"] == ["b"]
