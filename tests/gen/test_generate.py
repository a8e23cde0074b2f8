"""The front door's checks that run before any engine starts (the engine runs in the e2e tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from artifacts.errors import InputError
from gen.chunks import PromptTask
from gen.generate import generate, select_rows, split_overflow

ROWS = pd.DataFrame({"task_id": [11, 12, 13, 14, 15]})


def test_select_rows_is_inclusive_and_limited() -> None:
    assert select_rows(ROWS, start=1, end=3, limit=None)["task_id"].tolist() == [12, 13, 14]
    assert select_rows(ROWS, start=1, end=None, limit=2)["task_id"].tolist() == [12, 13]
    assert select_rows(ROWS, start=None, end=None, limit=None)["task_id"].tolist() == [11, 12, 13, 14, 15]
    assert select_rows(ROWS, start=4, end=99, limit=None)["task_id"].tolist() == [15]


@pytest.mark.parametrize(
    ("start", "end", "limit", "match"),
    [(3, 2, None, "empty"), (-1, None, None, "negative"), (5, None, None, "only 5 rows"), (0, 1, 0, "at least 1")],
)
def test_select_rows_rejects_bad_ranges(start, end, limit, match) -> None:
    with pytest.raises(InputError, match=match):
        select_rows(ROWS, start=start, end=end, limit=limit)


def test_split_overflow_excludes_prompts_that_leave_no_room() -> None:
    tasks = [PromptTask(1, "a", (2,) * 9), PromptTask(2, "b", (2,) * 10), PromptTask(3, "c", (2,) * 11)]
    fits, excluded = split_overflow(tasks, 10)
    assert [t.task_id for t in fits] == [1]
    assert [e["task_id"] for e in excluded] == [2, 3]
    assert "prompt has 11 tokens; the context holds 10" in excluded[1]["reason"]


def test_prompts_longer_than_the_context_are_listed_not_fatal(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    # Every prompt overflows a 16-token context: no engine starts, the run still records them.
    result = generate(problems_path=problems_parquet, output_dir=tmp_path, model=str(tiny_gemma2),
                      limit=3, max_model_len=16, progress=False)
    assert result.n_excluded == 3 and result.n_generated == 0
    meta = json.loads((tmp_path / "generations_metadata.json").read_text())
    assert len(meta["excluded_task_ids"]) == 3 and meta["excluded"][0]["reason"].startswith("prompt has")
    assert meta["n_tasks"] == 0 and meta["complete"] is True
    assert pd.read_parquet(tmp_path / "generations.parquet").empty


def test_other_settings_are_refused_before_the_engine_starts(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    common = dict(problems_path=problems_parquet, output_dir=tmp_path, model=str(tiny_gemma2), limit=2, max_model_len=16, progress=False)
    generate(**common)  # both prompts overflow: an empty file and its settings, no engine
    with pytest.raises(InputError, match=r"other settings \(prompt_style: 'raw' -> 'chat'\)"):
        generate(**common, prompt_style="chat")
    with pytest.raises(InputError, match=r"max_new_tokens: 2000 -> 5"):
        generate(**common, max_new_tokens=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "/no/such/model"}, "model folder not found"),
        ({"max_new_tokens": 0}, "--max-new-tokens"),
        ({"chunk_size": 0}, "--chunk-size"),
        ({"dtype": "int8"}, "--dtype int8"),
        ({"problems_path": "/no/problems.parquet"}, "run `python cli.py split` first"),
    ],
)
def test_bad_input_is_an_input_error(kwargs, match, tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    args = dict(problems_path=problems_parquet, output_dir=tmp_path, model=str(tiny_gemma2), limit=1, progress=False)
    with pytest.raises(InputError, match=match):
        generate(**(args | kwargs))


def test_missing_vllm_names_the_extra(monkeypatch: pytest.MonkeyPatch, tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(InputError, match=r"vllm is not installed; install the vLLM extra: pip install -e '\.\[cpu\]'"):
        generate(problems_path=problems_parquet, output_dir=tmp_path, model=str(tiny_gemma2), progress=False)
