"""The validation split: ids, columns, complexity, metadata, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from radon.complexity import cc_visit

from problems.split import COLUMNS, build_validation_split, read_problems, stratified_split
from problems.sources import load_mbpp


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory, mbpp_path, validation_ids_path) -> Path:
    out = tmp_path_factory.mktemp("split")
    build_validation_split(mbpp_path=mbpp_path, task_ids_path=validation_ids_path, output_dir=out)
    return out


def test_split_holds_exactly_the_validation_ids(split_dir, validation_ids_path):
    df = read_problems(split_dir / "validation_mbpp.parquet")
    expected = json.loads(validation_ids_path.read_text())
    assert len(df) == 388
    assert df["task_id"].tolist() == sorted(expected)
    assert list(df.columns) == list(COLUMNS)


def test_split_column_types(split_dir):
    df = pd.read_parquet(split_dir / "validation_mbpp.parquet")
    assert df["task_id"].dtype == "int64"
    assert df["cyclomatic_complexity"].dtype == "int64"
    assert all(isinstance(t, str) for t in df["test_list"].iloc[0])
    assert all(len(t) >= 1 for t in df["test_list"])


def test_complexity_matches_radon(split_dir):
    df = read_problems(split_dir / "validation_mbpp.parquet")
    for code, cc in zip(df["code"], df["cyclomatic_complexity"]):
        expected = max((b.complexity for b in cc_visit(code)), default=1)
        assert cc == expected


def test_test_setup_code_kept_for_367_and_927(split_dir):
    df = read_problems(split_dir / "validation_mbpp.parquet").set_index("task_id")
    assert df.loc[367, "test_setup_code"].strip()
    assert df.loc[927, "test_setup_code"].strip()
    assert (df["test_setup_code"].str.len() > 0).sum() == 2


def test_split_metadata(split_dir, mbpp_path):
    meta = json.loads((split_dir / "split_metadata.json").read_text())
    assert meta["source_sha256"] == "ccf64ceae9c5403bf50a044cb6d505bfd2a2963ee58338ba268fd65beab92a9f"
    assert meta["n_problems"] == 388 and meta["n_source_problems"] == 974
    assert sum(meta["complexity"]["counts"].values()) == 388


def test_cli_split_under_30s(tmp_path, repo_root, mbpp_path, validation_ids_path):
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "cli.py", "split", "--mbpp", str(mbpp_path), "--task-ids", str(validation_ids_path),
         "--data-dir", str(tmp_path)],
        cwd=repo_root, capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_parquet(tmp_path / "phase0_1" / "validation_mbpp.parquet")) == 388
    assert elapsed < 30


def test_stratified_split_sizes_and_determinism(mbpp_path):
    from problems.complexity import cyclomatic_complexity

    df, _ = load_mbpp(mbpp_path)
    cc = df.set_index("task_id")["code"].map(cyclomatic_complexity)
    a = stratified_split(cc, seed=42)
    b = stratified_split(cc, seed=42)
    c = stratified_split(cc, seed=7)
    assert a == b and a != c
    # 50/10/40 dealt round-robin over 974 problems, as in the research split.
    assert {k: len(v) for k, v in a.items()} == {"sae": 489, "hyperparams": 97, "validation": 388}
    all_ids = a["sae"] + a["hyperparams"] + a["validation"]
    assert sorted(all_ids) == sorted(cc.index.tolist())


def test_split_without_task_ids_uses_stratified_split(tmp_path, mbpp_path):
    result = build_validation_split(mbpp_path=mbpp_path, task_ids_path=None, output_dir=tmp_path)
    assert len(result.problems) == 388
    assert result.metadata["seed"] == 42
