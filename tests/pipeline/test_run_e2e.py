"""`python cli.py run` end to end on the demo model: every contract file, and a rerun that
starts no stage process.

Real vLLM CPU engine, real TransformerLens, real bubblewrap sandbox; nothing mocked. The run
itself is the session's `demo_run` (tests/conftest.py); crash and resume are covered by
tests/pipeline/test_kill_resume.py.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import DEMO_RUN_LAYERS, DEMO_RUN_TASKS
from tests.pipeline.contracts import check_all_contracts

pytestmark = pytest.mark.slow


def test_run_writes_every_contract_file(demo_run):
    check_all_contracts(demo_run.data_dir, n_tasks=DEMO_RUN_TASKS, layers=DEMO_RUN_LAYERS, model=str(demo_run.model))
    assert "pipeline finished" in demo_run.stdout


def test_rerun_after_success_starts_no_stage(demo_run):
    before = pd.read_parquet(demo_run.out / "generations.parquet")
    proc = demo_run.rerun()
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("split", "generate", "replay-activations", "evaluate", "report"):
        assert f"== {stage}: already done, skipped" in proc.stdout, proc.stdout
    assert "== generate: generate" not in proc.stdout  # no stage command line was started
    pd.testing.assert_frame_equal(before, pd.read_parquet(demo_run.out / "generations.parquet"))


def test_changed_stage_option_reruns_only_that_stage_and_later(demo_run):
    proc = demo_run.rerun("--timeout", "20")  # an evaluate option
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "== generate: already done, skipped" in proc.stdout
    assert "== replay-activations: already done, skipped" in proc.stdout
    assert "== evaluate: evaluate" in proc.stdout and "== report: report" in proc.stdout
