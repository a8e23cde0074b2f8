"""Atomic writes: all or nothing, usual permissions."""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest

from artifacts.files import atomic_path, read_json, write_json, write_npz, write_parquet


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    dest = tmp_path / "sub" / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_atomic_path_keeps_old_file_until_success(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("new")
            raise RuntimeError
    assert dest.read_text() == "old"
    with atomic_path(dest) as tmp:
        tmp.write_text("new")
    assert dest.read_text() == "new"


def test_written_files_have_the_usual_mode(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.int64(3), "y": np.float32(0.5), "z": np.arange(2)})
    mode = stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert read_json(tmp_path / "a.json") == {"x": 3, "y": 0.5, "z": [0, 1]}


def test_parquet_and_npz_roundtrip(tmp_path):
    df = pd.DataFrame({"task_id": [2, 1], "ids": [[1, 2], [3]]})
    write_parquet(tmp_path / "t.parquet", df)
    assert pd.read_parquet(tmp_path / "t.parquet")["ids"].map(list).tolist() == [[1, 2], [3]]
    write_npz(tmp_path / "a.npz", arr_0=np.ones((1, 4), np.float32), n=np.int64(3))
    with np.load(tmp_path / "a.npz") as z:
        assert z["arr_0"].shape == (1, 4) and int(z["n"]) == 3
