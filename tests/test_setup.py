"""Set-up: a missing sandbox stops `make` at once with the command to run, and `run` checks it too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from artifacts.errors import InputError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_missing_sandbox_without_an_installer_stops_with_the_command_to_run():
    proc = subprocess.run(["make", "--no-print-directory", "sandbox", "BWRAP=no-such-bwrap-here",
                           "APT_GET=no-such-apt-get-here"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "the sandbox program 'no-such-bwrap-here' is missing: run 'sudo apt-get install bubblewrap'" in proc.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_present_sandbox_passes(tmp_path):
    fake = tmp_path / "fake-bwrap"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    proc = subprocess.run(["make", "--no-print-directory", "sandbox", f"BWRAP={fake}"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_run_refuses_before_any_model_stage_without_bwrap(monkeypatch):
    import evaluate.sandbox
    from pipeline.run import check_sandbox

    monkeypatch.setattr(evaluate.sandbox, "bwrap_version", lambda path=None: None)
    with pytest.raises(InputError, match="bwrap: not found on PATH"):
        check_sandbox({})
    check_sandbox({"sandbox": "process"})  # the unisolated sandbox needs no bwrap
