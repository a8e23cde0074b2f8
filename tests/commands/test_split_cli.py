"""`python cli.py split` on bad input: one line, exit code 2, no traceback, no partial output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _run_split(repo_root: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "cli.py", "split", "--data-dir", str(out), *args],
        cwd=repo_root, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )


def _bad_inputs(tmp: Path, mbpp: Path, ids: Path) -> dict[str, tuple[list[str], str]]:
    rows = [json.loads(line) for line in mbpp.read_text().splitlines()[:20]]
    (tmp / "no_code.jsonl").write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "code"}) for r in rows))
    (tmp / "dup.json").write_text(json.dumps(rows + rows[:1]))
    (tmp / "mbpp.csv").write_text("task_id,text\n1,x\n")
    (tmp / "broken.jsonl").write_text("{not json\n")
    (tmp / "unknown_ids.json").write_text(json.dumps([1, 2, 99999]))
    (tmp / "dup_ids.json").write_text(json.dumps([1, 2, 2]))
    (tmp / "ids_not_list.json").write_text(json.dumps({"ids": [1]}))
    return {
        "missing file": (["--mbpp", str(tmp / "nope.jsonl"), "--task-ids", str(ids)], "not found"),
        "unknown format": (["--mbpp", str(tmp / "mbpp.csv"), "--task-ids", str(ids)], "unknown MBPP file format"),
        "unreadable": (["--mbpp", str(tmp / "broken.jsonl"), "--task-ids", str(ids)], "cannot read"),
        "missing column": (["--mbpp", str(tmp / "no_code.jsonl"), "--task-ids", str(ids)], "missing column(s) code"),
        "duplicate ids in MBPP": (["--mbpp", str(tmp / "dup.json"), "--task-ids", str(ids)], "duplicate task_id"),
        "id not in MBPP": (["--mbpp", str(mbpp), "--task-ids", str(tmp / "unknown_ids.json")], "not in MBPP"),
        "duplicate ids in list": (["--mbpp", str(mbpp), "--task-ids", str(tmp / "dup_ids.json")], "duplicate task id"),
        "id list not a list": (["--mbpp", str(mbpp), "--task-ids", str(tmp / "ids_not_list.json")], "JSON list"),
        "missing id file": (["--mbpp", str(mbpp), "--task-ids", str(tmp / "none.json")], "not found"),
    }


CASES = [
    "missing file", "unknown format", "unreadable", "missing column", "duplicate ids in MBPP",
    "id not in MBPP", "duplicate ids in list", "id list not a list", "missing id file",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_no_output(case, tmp_path, repo_root, mbpp_path, validation_ids_path):
    args, expected = _bad_inputs(tmp_path, mbpp_path, validation_ids_path)[case]
    out = tmp_path / "data"
    proc = _run_split(repo_root, out, *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    phase = out / "phase0_1"
    assert not phase.exists() or not any(phase.iterdir())


def test_hub_is_only_tried_without_mbpp_and_fails_clearly(tmp_path, repo_root, validation_ids_path):
    proc = _run_split(repo_root, tmp_path / "data", "--task-ids", str(validation_ids_path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--mbpp" in proc.stderr


def test_env_variable_points_at_mbpp(tmp_path, repo_root, mbpp_path, validation_ids_path):
    proc = subprocess.run(
        [sys.executable, "cli.py", "split", "--data-dir", str(tmp_path)],
        cwd=repo_root, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "PVA_MBPP": str(mbpp_path), "PVA_TASK_IDS": str(validation_ids_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "388 problems" in proc.stdout
