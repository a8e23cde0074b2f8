"""Set-up: a missing sandbox stops `make` at once with the command to run, and `run` checks it too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


PROJECT_PACKAGES = ("artifacts", "problems", "gen", "replay", "evaluate", "features", "report", "pipeline", "demo", "cli")


def test_installing_the_project_puts_no_generic_names_in_site_packages(tmp_path):
    """`import evaluate` outside the checkout gets Hugging Face's library or nothing, never ours."""
    probe = (
        "import importlib.util, json, sys\n"
        f"names = {PROJECT_PACKAGES!r}\n"
        "print(json.dumps({n: (s.origin if (s := importlib.util.find_spec(n)) else None) for n in names}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout
    found = json.loads(out)
    ours = {name: origin for name, origin in found.items() if origin and str(REPO) in origin}
    assert not ours, f"project modules importable outside the checkout: {ours}"
