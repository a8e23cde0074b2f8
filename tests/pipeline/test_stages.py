"""`run` builds every stage's command line from one set of settings (flags reach the stages)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from artifacts.errors import InputError
from artifacts.layout import DEFAULT_MODEL
from pipeline.run import RunSettings, apply_preset, build_stages


def _argv(stages, name):
    return next(s.argv for s in stages if s.name == name)


def test_settings_reach_every_stage(tmp_path):
    s = apply_preset(
        RunSettings(
            data_dir=tmp_path, model="m", limit=3, max_new_tokens=16, prompt_style="chat", dtype="float32",
            enforce_eager=True, layers="1,2", hook_point="resid_pre", replay_batch_size=2, verify=1,
            workers=2, timeout=5.0, sandbox="process", chunk_size=4,
        ),
        None,
    )
    stages = build_stages(s)
    assert [st.name for st in stages] == ["split", "generate", "replay-activations", "evaluate", "report"]
    gen = _argv(stages, "generate")
    for flag, value in [("--model", "m"), ("--limit", "3"), ("--max-new-tokens", "16"), ("--prompt-style", "chat"),
                        ("--dtype", "float32"), ("--chunk-size", "4")]:
        assert gen[gen.index(flag) + 1] == value
    assert "--enforce-eager" in gen and "--deterministic" not in gen
    rep = _argv(stages, "replay-activations")
    assert rep[rep.index("--layers") + 1] == "1,2" and rep[rep.index("--hook-point") + 1] == "resid_pre"
    assert rep[rep.index("--batch-size") + 1] == "2" and rep[rep.index("--verify") + 1] == "1"
    ev = _argv(stages, "evaluate")
    assert ev[ev.index("--layers") + 1] == "1,2" and ev[ev.index("--sandbox") + 1] == "process"
    for st in stages:
        assert st.argv[st.argv.index("--data-dir") + 1] == str(tmp_path)


def test_default_model_and_demo_preset(tmp_path):
    assert apply_preset(RunSettings(data_dir=tmp_path), None).model == DEFAULT_MODEL
    demo = apply_preset(RunSettings(data_dir=tmp_path), "demo")
    assert Path(demo.model) == tmp_path / "models" / "smollm2-135m-instruct"
    assert demo.limit == 20 and demo.prepare_demo_model and demo.enforce_eager
    assert "--enforce-eager" in _argv(build_stages(demo), "generate")
    assert build_stages(demo)[0].name == "prepare-demo-model"
    # Explicit options win over the preset.
    own = apply_preset(RunSettings(data_dir=tmp_path, model="x", limit=5), "demo")
    assert own.model == "x" and own.limit == 5 and not own.prepare_demo_model
    with pytest.raises(InputError):
        apply_preset(RunSettings(data_dir=tmp_path), "huge")


def test_split_skipped_when_problems_exist(tmp_path):
    s = apply_preset(RunSettings(data_dir=tmp_path), None)
    split = next(st for st in build_stages(s) if st.name == "split")
    assert split.needed()
    (tmp_path / "phase0_1").mkdir()
    (tmp_path / "phase0_1" / "validation_mbpp.parquet").write_bytes(b"x")
    assert not split.needed()


def test_run_cli_passes_options(tmp_path, monkeypatch):
    import commands.run as run_cmd
    from cli import cli

    seen = {}

    def fake_run_pipeline(settings, echo):
        seen["settings"] = settings
        return []

    monkeypatch.setattr(run_cmd, "run_pipeline", fake_run_pipeline)
    result = CliRunner().invoke(cli, ["run", "--data-dir", str(tmp_path), "--limit", "7", "--layers", "3",
                                      "--deterministic", "--workers", "1"])
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (s.limit, s.layers, s.deterministic, s.workers, s.model) == (7, "3", True, 1, DEFAULT_MODEL)
