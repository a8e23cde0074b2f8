"""The completion record: written at start and finish, matched by `run`, refusing mixed settings."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from artifacts import records
from artifacts.errors import InputError
from artifacts.records import code_version, is_current, read_record, stage_run
from artifacts.settings import StageConfig, setting


@dataclass(frozen=True)
class ToyConfig(StageConfig):
    """A stage that copies one file."""

    STAGE: ClassVar[str] = "toy"
    source: Path = setting(Path("in.txt"), help="Input file.", identity=False)
    factor: int = setting(1, help="Part of the output's identity.")
    workers: int = setting(1, help="Operational only.", identity=False)

    def inputs(self) -> list[Path]:
        return [self.data_dir / self.source]

    def outputs(self) -> list[Path]:
        return [self.data_dir / "out" / "result.txt"]

    def record_dir(self) -> Path:
        return self.data_dir / "out"


def _run(config: ToyConfig, *, resumes: bool = False, fail: bool = False) -> None:
    with stage_run(config, overwrite=config.overwrite, resumes=resumes):
        out = config.outputs()[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text((config.data_dir / config.source).read_text() * config.factor)
        if fail:
            raise RuntimeError("crash")


@pytest.fixture
def toy(tmp_path: Path) -> ToyConfig:
    (tmp_path / "in.txt").write_text("x")
    return ToyConfig(data_dir=tmp_path)


def test_a_finished_stage_is_current_until_settings_inputs_or_outputs_change(toy: ToyConfig):
    assert not is_current(toy)
    _run(toy)
    assert is_current(toy)
    assert is_current(ToyConfig(data_dir=toy.data_dir, workers=4)), "an operational setting is not identity"
    assert not is_current(ToyConfig(data_dir=toy.data_dir, factor=2))
    out = toy.outputs()[0]
    os.utime(out, ns=(out.stat().st_atime_ns, out.stat().st_mtime_ns + 1))
    assert not is_current(toy), "a touched output is not what the stage wrote"
    _run(toy)
    (toy.data_dir / "in.txt").write_text("xy")
    assert not is_current(toy)


def test_a_crashed_stage_leaves_an_incomplete_record(toy: ToyConfig):
    with pytest.raises(RuntimeError):
        _run(toy, fail=True)
    record = read_record(toy)
    assert record is not None and record["complete"] is False
    assert not is_current(toy)


def test_a_copied_data_folder_keeps_its_records(toy: ToyConfig, tmp_path_factory):
    _run(toy)
    copy = tmp_path_factory.mktemp("copy") / "data"
    shutil.copytree(toy.data_dir, copy)  # copy2 keeps mtimes; names are relative to data_dir
    assert is_current(ToyConfig(data_dir=copy))


def test_a_resuming_stage_refuses_other_identity_settings_unless_overwritten(toy: ToyConfig):
    _run(toy, resumes=True)
    _run(ToyConfig(data_dir=toy.data_dir, workers=3), resumes=True)  # operational: fine
    with pytest.raises(InputError, match=r"factor: 1 -> 2.*--overwrite"):
        _run(ToyConfig(data_dir=toy.data_dir, factor=2), resumes=True)
    _run(ToyConfig(data_dir=toy.data_dir, factor=2, overwrite=True), resumes=True)
    assert toy.outputs()[0].read_text() == "xx"


def test_a_resuming_stage_refuses_output_without_a_record(toy: ToyConfig):
    out = toy.outputs()[0]
    out.parent.mkdir(parents=True)
    out.write_text("made elsewhere")
    with pytest.raises(InputError, match="without a completion record"):
        _run(toy, resumes=True)


def test_overwrite_removes_the_outputs_first(toy: ToyConfig):
    _run(toy)
    seen = []
    with stage_run(ToyConfig(data_dir=toy.data_dir, overwrite=True), overwrite=True):
        seen.append(toy.outputs()[0].exists())
    assert seen == [False]


def test_a_second_run_of_the_stage_in_the_same_folder_is_refused(toy: ToyConfig):
    with stage_run(toy):
        with pytest.raises(InputError, match="another toy run"):
            with stage_run(toy):
                pass


def _project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_code_version_covers_the_import_closure_and_nothing_else(tmp_path: Path):
    files = {
        "base/__init__.py": "", "base/io.py": "X = 1\n",
        "stage_a/__init__.py": "", "stage_a/run.py": "def f():\n    from base.io import X\n",
        "stage_b/__init__.py": "", "stage_b/run.py": "import stage_a.run\n",
        "other/__init__.py": "", "other/x.py": "Y = 2\n",
    }
    root = _project(tmp_path / "p", files)
    before = {pkg: code_version(pkg, root) for pkg in ("stage_a", "stage_b", "base")}
    (root / "other" / "x.py").write_text("Y = 3\n")
    records.code_version.cache_clear()
    assert {pkg: code_version(pkg, root) for pkg in before} == before, "an unimported package does not count"
    (root / "base" / "io.py").write_text("X = 2\n")  # reached through a function-level import
    records.code_version.cache_clear()
    after = {pkg: code_version(pkg, root) for pkg in before}
    assert all(after[pkg] != before[pkg] for pkg in before)


def test_paths_given_as_strings_become_paths(tmp_path: Path):
    config = ToyConfig(data_dir=str(tmp_path), source="in.txt")  # a notebook user's call
    assert config.data_dir == tmp_path and config.source == Path("in.txt")


def test_run_skips_a_current_stage_unless_told_to_overwrite(toy: ToyConfig):
    from pipeline.run import run_pipeline

    _run(toy)
    noop = (sys.executable, "-c", "pass")  # stands in for the stage's process
    assert [t.ran for t in run_pipeline([toy], child=noop, echo=lambda _: None)] == [False]
    forced = ToyConfig(data_dir=toy.data_dir, overwrite=True)
    assert [t.ran for t in run_pipeline([forced], child=noop, echo=lambda _: None)] == [True]
