"""End to end on the tiny random Gemma-2 through the real vLLM CPU engine.

Acceptance: a row for every task that fits, prompts with exactly one BOS, and float32 vLLM
greedy tokens equal to Hugging Face ``generate(do_sample=False)`` (eager attention) token
for token for every prompt. The context is set to the longest prompt's length, so that
prompt is excluded (listed, not fatal) and the next longest run into the context limit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoTokenizer

from gen.hf_reference import hf_greedy
from gen.stop_tokens import end_of_turn_ids
from gen.tokenize import prompt_token_ids
from problems.prompts import render_prompt
from problems.split import read_problems
from tests.gen.cli_run import run_cli

N_TASKS = 10
MAX_NEW_TOKENS = 24


@pytest.fixture(scope="module")
def tiny_run(tiny_gemma2: Path, problems_parquet: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tok = AutoTokenizer.from_pretrained(tiny_gemma2)
    rows = read_problems(problems_parquet).iloc[:N_TASKS]
    prompts = {
        int(r.task_id): prompt_token_ids(render_prompt(r.text, list(r.test_list), "raw"), tok, "raw")
        for r in rows.itertuples()
    }
    context = max(len(p) for p in prompts.values())
    out = tmp_path_factory.mktemp("tiny-generate")
    proc = run_cli(
        "generate", "--model", str(tiny_gemma2), "--problems", str(problems_parquet), "--output-dir", str(out),
        "--limit", str(N_TASKS), "--max-new-tokens", str(MAX_NEW_TOKENS), "--max-model-len", str(context),
        "--dtype", "float32", "--enforce-eager", "--chunk-size", "4", "--deterministic",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"tok": tok, "prompts": prompts, "context": context, "out": out, "stdout": proc.stdout, "model": tiny_gemma2}


@pytest.mark.slow
def test_every_fitting_task_is_generated_and_overflow_is_listed(tiny_run: dict) -> None:
    df = pd.read_parquet(tiny_run["out"] / "generations.parquet")
    meta = json.loads((tiny_run["out"] / "generations_metadata.json").read_text())
    overflow = sorted(t for t, p in tiny_run["prompts"].items() if len(p) >= tiny_run["context"])
    assert overflow and meta["excluded_task_ids"] == overflow
    assert sorted(df["task_id"]) == sorted(set(tiny_run["prompts"]) - set(overflow))
    assert meta["complete"] is True and meta["n_tasks"] == len(df)
    assert meta["dtype"] == "float32" and meta["device"].startswith("cpu") and meta["vllm_version"]
    # --deterministic on CPU: prefix caching off; vLLM has no CPU batch-invariant kernels, and says so.
    assert meta["deterministic"] and not meta["enable_prefix_caching"]
    assert meta["batch_invariant"] is False and "no cpu kernels" in meta["batch_invariant_note"].lower()
    assert f"{len(df)} generated, 0 already done, {len(overflow)} excluded" in tiny_run["stdout"]


@pytest.mark.slow
def test_prompts_are_our_token_ids_with_one_bos(tiny_run: dict) -> None:
    df = pd.read_parquet(tiny_run["out"] / "generations.parquet")
    bos = tiny_run["tok"].bos_token_id
    for row in df.itertuples():
        ids = [int(i) for i in row.prompt_token_ids]
        assert ids == tiny_run["prompts"][row.task_id]
        assert ids[0] == bos and ids.count(bos) == 1
        assert row.n_prompt_tokens == len(ids) and row.n_completion_tokens == len(row.completion_token_ids)


@pytest.mark.slow
def test_vllm_greedy_equals_hugging_face_token_for_token(tiny_run: dict) -> None:
    df = pd.read_parquet(tiny_run["out"] / "generations.parquet")
    stops = end_of_turn_ids(str(tiny_run["model"])).ids
    mismatches = []
    for row in df.itertuples():
        prompt = [int(i) for i in row.prompt_token_ids]
        # vLLM stops at the context end; give Hugging Face the same budget.
        budget = min(MAX_NEW_TOKENS, tiny_run["context"] - len(prompt))
        expected = hf_greedy(str(tiny_run["model"]), [prompt], max_new_tokens=budget, stop_token_ids=stops)[0]
        got = [int(i) for i in row.completion_token_ids]
        if got != expected:
            mismatches.append((row.task_id, got, expected))
    assert not mismatches
    assert len({tuple(c) for c in df["completion_token_ids"].map(tuple)}) > 1  # varied, not one repeated answer
    assert df["n_completion_tokens"].min() < MAX_NEW_TOKENS  # a prompt ran into the context end


@pytest.mark.slow
def test_rerun_with_other_settings_is_refused(tiny_run: dict, problems_parquet: Path) -> None:
    proc = run_cli(
        "generate", "--model", str(tiny_run["model"]), "--problems", str(problems_parquet), "--output-dir",
        str(tiny_run["out"]), "--limit", str(N_TASKS), "--max-new-tokens", str(MAX_NEW_TOKENS),
        "--max-model-len", str(tiny_run["context"]), "--prompt-style", "chat", "--deterministic",
    )
    assert proc.returncode == 2
    assert "other settings (prompt_style: 'raw' -> 'chat')" in proc.stderr and "--overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr
