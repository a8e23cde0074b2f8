"""`python cli.py run` end to end on the demo model: every contract file, and a rerun that
starts no stage process.

Real vLLM CPU engine, real TransformerLens, real bubblewrap sandbox; nothing mocked. The run
itself is the session's `demo_run` (tests/conftest.py); crash and resume are covered by
tests/pipeline/test_kill_resume.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DEMO_RUN_ENV, DEMO_RUN_LAYERS, DEMO_RUN_TASKS, REPO
from tests.pipeline.contracts import check_all_contracts

pytestmark = pytest.mark.slow
# A default of the features stage, changed in a copy of the project: the command layer is the config.
FEATURES_DEFAULT_EDIT = ("seed: int = setting(0,", "seed: int = setting(1,")


def test_run_writes_every_contract_file(demo_run):
    check_all_contracts(demo_run.data_dir, n_tasks=DEMO_RUN_TASKS, layers=DEMO_RUN_LAYERS, model=str(demo_run.model))
    assert "pipeline finished" in demo_run.stdout


def test_rerun_after_success_starts_no_stage(demo_run):
    before = pd.read_parquet(demo_run.out / "generations.parquet")
    proc = demo_run.rerun()
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("split", "generate", "replay-activations", "evaluate", "report"):
        assert f"== {stage}: already done, skipped" in proc.stdout, proc.stdout
    assert "running" not in proc.stdout  # no stage process was started
    pd.testing.assert_frame_equal(before, pd.read_parquet(demo_run.out / "generations.parquet"))


def _rerun_on_a_copy(demo_run, tmp_path: Path, *extra: str, edit: tuple[str, str, str] | None = None) -> str:
    """`run` again on a copy of the demo run's data (the session's run stays as it was).

    With ``edit = (file, old, new)`` the run starts from a copy of the project in which
    ``file`` has ``old`` replaced by ``new``.
    """
    project = REPO
    if edit is not None:
        relative, old, new = edit
        project = tmp_path / "project"
        shutil.copytree(REPO, project, ignore=shutil.ignore_patterns(".venv", ".git", "data", "tests", "__pycache__"))
        source = project / relative
        text = source.read_text()
        assert old in text, f"{relative} no longer holds {old!r}: update this test"
        source.write_text(text.replace(old, new, 1))
    data = tmp_path / "data"
    shutil.copytree(demo_run.data_dir, data)  # copy2: mtimes kept, so the records still match
    args = [a if a != str(demo_run.data_dir) else str(data) for a in demo_run.args] + list(extra)
    proc = subprocess.run(args, cwd=project, env={**os.environ, **DEMO_RUN_ENV}, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_a_changed_stage_option_reruns_that_stage_and_the_later_ones(demo_run, tmp_path):
    out = _rerun_on_a_copy(demo_run, tmp_path, "--timeout", "20")  # an evaluate option
    for stage in ("split", "generate", "replay-activations"):
        assert f"== {stage}: already done, skipped" in out, out
    assert all(f"== {stage}: running" in out for stage in ("evaluate", "features", "report")), out


def test_a_changed_default_reruns_that_stage_and_the_later_ones(demo_run, tmp_path):
    out = _rerun_on_a_copy(demo_run, tmp_path, edit=("features/config.py", *FEATURES_DEFAULT_EDIT))
    for stage in ("split", "generate", "replay-activations", "evaluate"):
        assert f"== {stage}: already done, skipped" in out, out
    assert "== features: running" in out and "== report: running" in out, out


def test_changed_report_code_reruns_the_report_alone(demo_run, tmp_path):
    out = _rerun_on_a_copy(demo_run, tmp_path, edit=("report/stage.py", '"""', '"""Edited. '))
    for stage in ("split", "generate", "replay-activations", "evaluate", "features"):
        assert f"== {stage}: already done, skipped" in out, out
    assert "== report: running" in out, out
