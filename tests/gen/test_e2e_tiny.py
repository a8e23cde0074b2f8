"""The real vLLM CPU engine end to end on the tiny random Gemma-2, float32: ONE engine start for the module.

Acceptance: the streamed ``generate`` stores a row for every task that fits, prompts with
exactly one BOS, and greedy tokens equal, token for token, to Hugging Face
``generate(do_sample=False)`` (eager attention), to the earlier chunked loop (one
``LLM.generate`` per chunk of 4) and to one plain ``LLM.generate`` over every prompt. The
context is set to the longest prompt's length, so that prompt is excluded (listed, not
fatal) and the next longest run into the context limit. ``--stop eos-only`` on the same
engine continues past ``<end_of_turn>`` to ``<eos>``, as Hugging Face does when told to stop
on the EOS alone. The command line (``python -m cli generate``), resume and SIGKILL run in
``tests/pipeline/test_kill_resume.py``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoTokenizer

from artifacts.meta import generations as keys
from gen.engine import Completion, EngineConfig
from gen.generate import generate
from gen.hf_reference import hf_greedy
from gen.stop_tokens import end_of_turn_ids
from gen.tokenize import prompt_token_ids
from gen.vllm_engine import VllmEngine, sampling_params
from problems.prompts import render_prompt
from problems.split import read_problems
from tests.gen.cli_run import TEST_ENV

pytestmark = pytest.mark.slow

N_TASKS = 10
MAX_NEW_TOKENS = 24
CHUNK = 4


class Borrowed:
    """The module's engine lent to one ``generate`` call: checks the config it was asked for, stays open."""

    def __init__(self, engine: VllmEngine) -> None:
        self.engine = engine
        self.starts = 0
        self.max_num_seqs = engine.max_num_seqs

    def __call__(self, config: EngineConfig, *, data_parallel_size: int, device: str) -> "Borrowed":
        assert config == self.engine.config and data_parallel_size == 1 and device == "cpu"
        self.starts += 1
        return self

    def add_request(self, request_id: str, prompt_token_ids) -> None:
        self.engine.add_request(request_id, prompt_token_ids)

    def step(self) -> list[Completion]:
        return self.engine.step()

    def has_unfinished_requests(self) -> bool:
        return self.engine.has_unfinished_requests()

    def close(self) -> None:
        pass  # the module fixture closes it


@pytest.fixture(scope="module")
def tiny(tiny_gemma2: Path, problems_parquet: Path) -> dict:
    tok = AutoTokenizer.from_pretrained(tiny_gemma2)
    rows = read_problems(problems_parquet).iloc[:N_TASKS]
    prompts = {
        int(r.task_id): prompt_token_ids(render_prompt(r.text, list(r.test_list), "raw"), tok, "raw")
        for r in rows.itertuples()
    }
    return {"tok": tok, "prompts": prompts, "context": max(len(p) for p in prompts.values()), "model": tiny_gemma2}


@pytest.fixture(scope="module")
def engine(tiny: dict):
    """The module's only vLLM engine, configured exactly as ``generate`` will ask for it."""
    stops = end_of_turn_ids(str(tiny["model"]), tiny["tok"]).ids
    config = EngineConfig(
        model=str(Path(tiny["model"]).resolve()), revision=None, dtype="float32", max_model_len=tiny["context"],
        max_new_tokens=MAX_NEW_TOKENS, stop_token_ids=stops, enforce_eager=True, enable_prefix_caching=False,
    )
    with pytest.MonkeyPatch.context() as mp:
        for name, value in TEST_ENV.items():
            mp.setenv(name, value)
        built = VllmEngine(config)
        yield built
        built.close()


@pytest.fixture(scope="module")
def streamed(engine: VllmEngine, tiny: dict, problems_parquet: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("tiny-generate")
    factory = Borrowed(engine)
    result = generate(
        problems_path=problems_parquet, output_dir=out, model=str(tiny["model"]), limit=N_TASKS,
        max_new_tokens=MAX_NEW_TOKENS, max_model_len=tiny["context"], dtype="float32", deterministic=True,
        commit_every=3, progress=False, engine_factory=factory,
    )
    assert factory.starts == 1
    df = pd.read_parquet(out / "generations.parquet")
    meta = json.loads((out / "generations_metadata.json").read_text())
    return {"result": result, "df": df, "meta": meta}


def _ids(values) -> list[list[int]]:
    return [[int(i) for i in v] for v in values]


def test_every_fitting_task_is_generated_and_overflow_is_listed(streamed: dict, tiny: dict) -> None:
    df, meta = streamed["df"], streamed["meta"]
    overflow = sorted(t for t, p in tiny["prompts"].items() if len(p) >= tiny["context"])
    assert overflow and meta[keys.EXCLUDED_TASK_IDS] == overflow
    assert sorted(df["task_id"]) == sorted(set(tiny["prompts"]) - set(overflow))
    assert meta[keys.COMPLETE] is True and meta[keys.N_TASKS] == len(df)
    assert meta[keys.DTYPE] == "float32" and meta[keys.DEVICE].startswith("cpu") and meta[keys.VLLM_VERSION]
    # --deterministic on CPU: prefix caching off; vLLM has no CPU batch-invariant kernels, and says so.
    assert meta["deterministic"] and not meta["enable_prefix_caching"]
    assert meta["batch_invariant"] is False and "no cpu kernels" in meta["batch_invariant_note"].lower()
    assert meta["max_num_seqs"] and meta["max_num_seqs"] >= len(df)  # one batch: the engine's own limit
    assert meta[keys.TOKENS_PER_S] > 0 and (df["generation_time"] > 0).all()
    assert 1 <= streamed["result"].n_commits <= -(-len(df) // 3)  # finishes in one step share a commit


def test_prompts_are_our_token_ids_with_one_bos(streamed: dict, tiny: dict) -> None:
    bos = tiny["tok"].bos_token_id
    for row in streamed["df"].itertuples():
        ids = [int(i) for i in row.prompt_token_ids]
        assert ids == tiny["prompts"][row.task_id]
        assert ids[0] == bos and ids.count(bos) == 1
        assert row.n_prompt_tokens == len(ids) and row.n_completion_tokens == len(row.completion_token_ids)


def test_streamed_tokens_equal_hugging_face_the_chunked_loop_and_one_call(streamed: dict, engine: VllmEngine, tiny: dict) -> None:
    df = streamed["df"]
    prompts = _ids(df["prompt_token_ids"])
    got = _ids(df["completion_token_ids"])
    # vLLM stops at the context end; give Hugging Face the same budget.
    budgets = [min(MAX_NEW_TOKENS, tiny["context"] - len(p)) for p in prompts]
    hf = hf_greedy(str(tiny["model"]), prompts, max_new_tokens=budgets, stop_token_ids=engine.config.stop_token_ids)
    chunked = [list(c.token_ids) for s in range(0, len(prompts), CHUNK) for c in engine.generate_batch(prompts[s : s + CHUNK])]
    one_call = [list(c.token_ids) for c in engine.generate_batch(prompts)]
    assert got == hf
    assert got == chunked
    assert got == one_call
    assert len({tuple(c) for c in got}) > 1  # varied, not one repeated answer
    assert df["n_completion_tokens"].min() < MAX_NEW_TOKENS  # a prompt ran into the context end or stopped


def test_eos_only_continues_past_end_of_turn(streamed: dict, engine: VllmEngine, tiny: dict) -> None:
    tok = tiny["tok"]
    eos, end_of_turn = tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")
    df = streamed["df"]
    budget = df["prompt_token_ids"].map(lambda ids: min(MAX_NEW_TOKENS, tiny["context"] - len(ids)))
    turn_end = df["completion_token_ids"].map(lambda ids: int(ids[-1]) == end_of_turn)
    picked = df[turn_end & (df["n_completion_tokens"] < budget)]
    assert len(picked) > 0, "the tiny model ends no completion early with <end_of_turn>; pick other prompts"
    prompts = _ids(picked["prompt_token_ids"])
    budgets = budget[picked.index].tolist()
    eos_only = replace(engine.config, stop_token_ids=(eos,), ignore_eos=True)
    default_sampling, engine.sampling = engine.sampling, sampling_params(eos_only)
    try:
        for i, ids in enumerate(prompts):
            engine.add_request(f"eos-only-{i}", ids)
        done: dict[str, Completion] = {}
        while engine.has_unfinished_requests():
            done.update({c.request_id: c for c in engine.step()})
    finally:
        engine.sampling = default_sampling
    longer = [list(done[f"eos-only-{i}"].token_ids) for i in range(len(prompts))]
    # The earlier tool's stopping: Hugging Face told to stop on the tokenizer's EOS alone.
    assert longer == hf_greedy(str(tiny["model"]), prompts, max_new_tokens=budgets, stop_token_ids=[eos])
    for before, after, room in zip(_ids(picked["completion_token_ids"]), longer, budgets):
        assert len(after) > len(before) and after[: len(before)] == before  # ran on past <end_of_turn>
        assert after[-1] == eos or len(after) == room
