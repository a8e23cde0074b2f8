"""The real vLLM CPU engine end to end on the tiny random Gemma-2, float32 (one engine start: ``tiny_vllm_run``).

Acceptance: the streamed ``generate`` stores a row for every task that fits, prompts with
exactly one BOS, and greedy tokens equal, token for token, to Hugging Face
``generate(do_sample=False)`` (eager attention), to the earlier chunked loop (one
``LLM.generate`` per chunk) and to one plain ``LLM.generate`` over every prompt. The
longest prompt fills the context, so it is excluded (listed, not fatal). ``--stop
eos-only`` on the same engine continues past ``<end_of_turn>`` to ``<eos>``, as Hugging
Face does when told to stop on the EOS alone. The command line, resume and SIGKILL run in
``tests/pipeline/test_kill_resume.py`` (with these generations as its reference).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from transformers import AutoTokenizer

from artifacts.schema import generations as keys
from demo.hf_reference import hf_greedy
from tests.gen.tiny_engine import MAX_NEW_TOKENS, TinyRun

pytestmark = pytest.mark.slow


def _ids(values) -> list[list[int]]:
    return [[int(i) for i in v] for v in values]


def _table(run: TinyRun) -> pd.DataFrame:
    return pd.read_parquet(run.out / "generations.parquet")


def _budgets(run: TinyRun, prompts: list[list[int]]) -> list[int]:
    # vLLM stops at the context end; give Hugging Face the same budget.
    return [min(MAX_NEW_TOKENS, run.context - len(p)) for p in prompts]


def test_every_fitting_task_is_generated_and_overflow_is_listed(tiny_vllm_run: TinyRun) -> None:
    run = tiny_vllm_run
    df = _table(run)
    meta = json.loads((run.out / "generations_metadata.json").read_text())
    overflow = sorted(t for t, p in run.prompts.items() if len(p) >= run.context)
    assert overflow and meta[keys.EXCLUDED_TASK_IDS] == overflow
    assert sorted(df["task_id"]) == sorted(set(run.prompts) - set(overflow))
    assert meta[keys.COMPLETE] is True and meta[keys.N_TASKS] == len(df)
    assert meta[keys.DTYPE] == "float32" and meta[keys.DEVICE].startswith("cpu") and meta[keys.VLLM_VERSION]
    # --deterministic on CPU: prefix caching off; vLLM has no CPU batch-invariant kernels, and says so.
    assert meta["deterministic"] and not meta["enable_prefix_caching"]
    assert meta["batch_invariant"] is False and "no cpu kernels" in meta["batch_invariant_note"].lower()
    assert meta["max_num_seqs"] and meta["max_num_seqs"] >= len(df)  # one batch: the engine's own limit
    assert meta[keys.TOKENS_PER_S] > 0 and (df["generation_time"] > 0).all()
    assert run.n_starts == 1 and 1 <= run.n_commits <= -(-len(df) // 3)  # finishes in one step share a commit


def test_prompts_are_our_token_ids_with_one_bos(tiny_vllm_run: TinyRun) -> None:
    bos = AutoTokenizer.from_pretrained(tiny_vllm_run.model).bos_token_id
    for row in _table(tiny_vllm_run).itertuples():
        ids = [int(i) for i in row.prompt_token_ids]
        assert ids == tiny_vllm_run.prompts[row.task_id]
        assert ids[0] == bos and ids.count(bos) == 1
        assert row.n_prompt_tokens == len(ids) and row.n_completion_tokens == len(row.completion_token_ids)


def test_streamed_tokens_equal_hugging_face_the_chunked_loop_and_one_call(tiny_vllm_run: TinyRun) -> None:
    run = tiny_vllm_run
    df = _table(run)
    prompts = _ids(df["prompt_token_ids"])
    got = _ids(df["completion_token_ids"])
    hf = hf_greedy(str(run.model), prompts, max_new_tokens=_budgets(run, prompts), stop_token_ids=run.config.stop_token_ids)
    assert got == hf
    assert got == run.chunked
    assert got == run.one_call
    assert len({tuple(c) for c in got}) > 1  # varied, not one repeated answer
    assert set(df["finish_reason"]) == {"stop", "length"}  # some hit <end_of_turn>, some the context or budget


def test_eos_only_continues_past_end_of_turn(tiny_vllm_run: TinyRun) -> None:
    run = tiny_vllm_run
    tok = AutoTokenizer.from_pretrained(run.model)
    assert run.eos_only, "the tiny model ends no completion early with <end_of_turn>; pick other prompts"
    default = dict(zip(_table(run)["task_id"], _ids(_table(run)["completion_token_ids"])))
    ids = sorted(run.eos_only)
    prompts = [run.prompts[t] for t in ids]
    budgets = _budgets(run, prompts)
    # The earlier tool's stopping: Hugging Face told to stop on the tokenizer's EOS alone.
    assert [run.eos_only[t] for t in ids] == hf_greedy(str(run.model), prompts, max_new_tokens=budgets,
                                                       stop_token_ids=[tok.eos_token_id])
    for task_id, room in zip(ids, budgets):
        before, after = default[task_id], run.eos_only[task_id]
        assert len(after) > len(before) and after[: len(before)] == before  # ran on past <end_of_turn>
        assert after[-1] == tok.eos_token_id or len(after) == room
