"""Benchmark the generate stage: streaming vs the earlier chunked loop vs one ``LLM.generate``; vs HF.

Two parts, each on the demo model in float32, greedy, fed the same prompt token ids:

(a) ``engine`` (default): one vLLM engine, three ways of driving it over the same N prompts,
    alternated ``--repeats`` times in one process (across processes the spread here is about
    10 %): ``streaming`` (what ``generate`` does: every prompt submitted to
    ``LLM.llm_engine`` at once, completions committed to a real store as they finish, every
    16), ``chunked`` (the earlier loop: one ``LLM.generate`` per ``--chunk-size`` prompts) and
    ``one-call`` (one plain ``LLM.generate`` over all N: the engine's own limit here), after an
    untimed warm-up and with prefix caching off (``--prefix-caching`` keeps it). Prints
    wall time, tokens/s, each against ``one-call``, whether every variant's greedy tokens are
    identical, and a decode-step count from the run's real completion lengths: one batch per
    chunk needs the sum over chunks of the longest completion, a continuous batch at most
    ``max_num_seqs`` wide needs about the longest (a GPU decodes 8 or 256 sequences in about
    the same step time, so there this ratio is the speed-up).
(b) ``hf``: ``gen.stage.run`` with its default settings, engine start included, against
    Hugging Face ``generate`` one problem at a time, model load included (the earlier
    approach), on ``--hf-n`` problems x ``--hf-max-new-tokens``; the ratio is reported with the
    load average (the HF side slows down most under load).

    python -m bench.generate [--part engine|hf|both] [--n 128] [--max-new-tokens 256] [--repeats 2]
                             [--hf-n 48] [--hf-max-new-tokens 192]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from artifacts.layout import MBPP_ENV, TASK_IDS_ENV, Layout
from bench.table import format_table

if TYPE_CHECKING:  # for the type hints only: each part imports what it runs, when it runs
    from gen.stream import PromptTask

VARIANTS = ("streaming", "chunked", "one-call")


def _problems(path: Path | None, tmp: Path) -> Path:
    """The validation problems: ``--problems``, the data folder's, or built from $PVA_MBPP/$PVA_TASK_IDS."""
    if path is not None:
        return path
    default = Layout.default().problems
    if default.is_file():
        return default
    from problems.split import build_validation_split

    return build_validation_split(
        mbpp_path=os.environ.get(MBPP_ENV), task_ids_path=os.environ.get(TASK_IDS_ENV), output_dir=tmp / "phase0_1"
    ).parquet_path


def chunked_steps(lengths: Sequence[int], chunk: int) -> int:
    """Sequential decode steps of one batch per chunk: each chunk waits for its longest completion."""
    return sum(max(lengths[s : s + chunk]) for s in range(0, len(lengths), chunk))


def continuous_steps(lengths: Sequence[int], width: int) -> int:
    """Decode steps of continuous batching at most ``width`` wide: a freed slot takes the next prompt."""
    slots = [0] * min(width, len(lengths))
    for n in lengths:
        i = slots.index(min(slots))
        slots[i] += n
    return max(slots) if slots else 0


def _load() -> float:
    return os.getloadavg()[0]


def _tokenized_tasks(model: str, problems: Path, limit: int) -> tuple[Any, list[PromptTask]]:
    """The model's tokenizer and the first ``limit`` validation problems as raw-prompt tasks."""
    from transformers import AutoTokenizer

    from gen.plan import build_tasks, select_rows
    from problems.split import read_problems

    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = select_rows(read_problems(problems), start=None, end=None, limit=limit)
    return tokenizer, build_tasks(rows, tokenizer, "raw")


def run_engine_part(args: argparse.Namespace, problems: Path, tmp: Path) -> list[dict]:
    """Part (a): one engine driven three ways over the same prompts, alternated; prints the table."""
    from gen.device_policy import apply_cpu_env_defaults

    tokenizer, tasks = _tokenized_tasks(args.model, problems, args.n)
    prompts = [list(t.token_ids) for t in tasks]
    apply_cpu_env_defaults()
    engine, start_s = _start_engine(args, tokenizer)
    # Warm-up, untimed: the first requests through a fresh engine pay one-off allocation costs.
    engine.generate_batch(prompts[:8])
    drivers = _drivers(engine, tasks, tokenizer, args.chunk_size, tmp)
    try:
        timings, tokens, loads = _alternate(drivers, args.repeats)
    finally:
        max_num_seqs = engine.max_num_seqs
        engine.close()
    rows = _engine_rows(timings, tokens, loads, n_prompts=len(prompts), start_s=start_s)
    _print_engine_summary(args, rows, [len(t) for t in tokens["one-call"]], max_num_seqs)
    return rows


def _start_engine(args: argparse.Namespace, tokenizer: Any) -> tuple[Any, float]:
    """The vLLM engine of every variant (float32, eager) and the seconds it took to start."""
    from gen.context import context_length
    from gen.engine import EngineConfig
    from gen.stop_tokens import end_of_turn_ids
    from gen.vllm_engine import VllmEngine

    config = EngineConfig(
        model=args.model, revision=None, dtype="float32", max_model_len=context_length(args.model),
        max_new_tokens=args.max_new_tokens, stop_token_ids=end_of_turn_ids(args.model, tokenizer).ids,
        enforce_eager=True, enable_prefix_caching=args.prefix_caching,
    )
    start = time.perf_counter()
    engine = VllmEngine(config)
    return engine, time.perf_counter() - start


def _drivers(engine: Any, tasks: list[PromptTask], tokenizer: Any, chunk_size: int,
             tmp: Path) -> dict[str, Callable[[int], list[list[int]]]]:
    """Each variant as ``run index -> completion token ids in task order``."""
    from gen.store import GenerationStore
    from gen.stream import run_stream

    prompts = [list(t.token_ids) for t in tasks]
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731

    def streaming(run: int) -> list[list[int]]:
        store = GenerationStore(tmp / f"stream-{run}")
        store.open()
        run_stream(tasks=tasks, engine=engine, store=store, decode=decode, progress=False)
        by_id = dict(zip(store.table.column("task_id").to_pylist(), store.table.column("completion_token_ids").to_pylist()))
        return [list(by_id[t.task_id]) for t in tasks]

    def chunked(run: int) -> list[list[int]]:
        step = chunk_size
        return [list(c.token_ids) for s in range(0, len(prompts), step) for c in engine.generate_batch(prompts[s : s + step])]

    def one_call(run: int) -> list[list[int]]:
        return [list(c.token_ids) for c in engine.generate_batch(prompts)]

    return {"streaming": streaming, "chunked": chunked, "one-call": one_call}


def _alternate(drivers: dict[str, Callable[[int], list[list[int]]]],
               repeats: int) -> tuple[dict[str, list[float]], dict[str, list[list[int]]], list[float]]:
    """Run every variant ``repeats`` times, rotating which goes first: wall times, tokens, load averages."""
    timings: dict[str, list[float]] = {v: [] for v in VARIANTS}
    tokens: dict[str, list[list[int]]] = {}
    loads = [_load()]
    for run in range(repeats):
        order = VARIANTS[run % len(VARIANTS):] + VARIANTS[: run % len(VARIANTS)]  # rotate who goes first
        for variant in order:
            t0 = time.perf_counter()
            out = drivers[variant](run)
            timings[variant].append(time.perf_counter() - t0)
            tokens.setdefault(variant, out)
            if out != tokens[variant]:
                raise RuntimeError(f"{variant}: greedy tokens changed between repeats")
            loads.append(_load())
            print(f"  run {run + 1} {variant}: {timings[variant][-1]:.1f}s", flush=True)
    return timings, tokens, loads


def _engine_rows(timings: dict[str, list[float]], tokens: dict[str, list[list[int]]], loads: list[float], *,
                 n_prompts: int, start_s: float) -> list[dict]:
    """One table row per variant: its runs' wall times and tokens/s, each against ``one-call``."""
    n_tokens = sum(len(t) for t in tokens["one-call"])
    identical = all(tokens[v] == tokens["one-call"] for v in VARIANTS)
    base_tps = [n_tokens / s for s in timings["one-call"]]
    rows = []
    for variant in VARIANTS:
        tps = [n_tokens / s for s in timings[variant]]
        rows.append({
            "variant": variant, "problems": n_prompts, "tokens": n_tokens,
            "wall_s": " / ".join(f"{s:.1f}" for s in timings[variant]),
            "tok_s": " / ".join(f"{x:.0f}" for x in tps),
            "vs_one_call": " / ".join(f"{a / b:.2f}" for a, b in zip(tps, base_tps)),
            "identical": identical, "engine_start_s": round(start_s, 1),
            "load_avg_1m": f"{min(loads):.2f}-{max(loads):.2f}",
        })
    return rows


def _print_engine_summary(args: argparse.Namespace, rows: list[dict], lengths: list[int],
                          max_num_seqs: int | None) -> None:
    """The table, the decode-step counts from the real completion lengths, and whether tokens matched."""
    n_prompts, identical = rows[0]["problems"], rows[0]["identical"]
    width = max_num_seqs or len(lengths)
    steps_chunked = chunked_steps(lengths, args.chunk_size)
    steps_one = continuous_steps(lengths, width)
    caching = "on" if args.prefix_caching else "off"
    print(f"\n== generate, one engine: {n_prompts} problems x {args.max_new_tokens} tokens, float32, eager, "
          f"prefix caching {caching}, {args.model}; {args.repeats} alternated runs (tok/s of each run)")
    print(format_table(rows))
    print(f"decode steps from these completion lengths: chunks of {args.chunk_size} {steps_chunked}, "
          f"one continuous batch (max_num_seqs {width}) {steps_one}: {steps_chunked / max(1, steps_one):.2f}x")
    print(f"identical greedy tokens across streaming, chunked and one-call: {identical}")


def run_hf_part(args: argparse.Namespace, problems: Path, tmp: Path) -> list[dict]:
    """Part (b): ``generate`` with its defaults against Hugging Face one problem at a time; prints the table."""
    from demo.hf_reference import hf_greedy
    from gen.config import GenerateConfig
    from gen.stage import run as generate
    from gen.stop_tokens import end_of_turn_ids

    tokenizer, tasks = _tokenized_tasks(args.model, problems, args.hf_n)
    stops = end_of_turn_ids(args.model, tokenizer).ids

    # The baseline first, in a process vLLM has not touched yet.
    load_hf = [_load()]
    start = time.perf_counter()
    timings: list[float] = []
    hf = hf_greedy(args.model, [list(t.token_ids) for t in tasks], max_new_tokens=args.hf_max_new_tokens,
                   stop_token_ids=stops, timings=timings, progress=True)
    hf_wall = time.perf_counter() - start
    load_hf.append(_load())

    load_ours = [_load()]
    start = time.perf_counter()
    result = generate(GenerateConfig(problems_path=problems, output_dir=tmp / "ours", model=args.model,
                                     limit=args.hf_n, max_new_tokens=args.hf_max_new_tokens), progress=False)
    ours_wall = time.perf_counter() - start
    load_ours.append(_load())
    ours = pd.read_parquet(result.parquet_path)

    by_id = {t.task_id: c for t, c in zip(tasks, hf)}
    identical = sum(list(map(int, a)) == by_id[i] for i, a in zip(ours["task_id"], ours["completion_token_ids"]))
    hf_tokens = sum(len(c) for c in hf)
    rows = [
        {"variant": "generate (defaults, engine start included)", "problems": result.n_generated,
         "tokens": result.n_completion_tokens, "wall_s": round(ours_wall, 1), "start_s": round(result.engine_load_time_s, 1),
         "tok_s_wall": round(result.n_completion_tokens / ours_wall, 1), "load_avg_1m": f"{min(load_ours):.2f}-{max(load_ours):.2f}",
         "enforce_eager": result.metadata.get("enforce_eager")},
        {"variant": "HF one at a time (model load included)", "problems": len(hf), "tokens": hf_tokens,
         "wall_s": round(hf_wall, 1), "start_s": round(hf_wall - sum(timings), 1), "tok_s_wall": round(hf_tokens / hf_wall, 1),
         "load_avg_1m": f"{min(load_hf):.2f}-{max(load_hf):.2f}", "enforce_eager": None},
    ]
    print(f"\n== generate vs Hugging Face: {args.hf_n} problems x {args.hf_max_new_tokens} tokens, float32, {args.model}")
    print(format_table(rows))
    print(f"wall-time ratio (HF / ours, both with loading): {hf_wall / ours_wall:.2f}x; identical greedy tokens "
          f"{identical}/{len(hf)}")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("engine", "hf", "both"), default="both")
    parser.add_argument("--n", type=int, default=128, help="problems for the engine part (the first N)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="alternated runs of each variant")
    parser.add_argument("--chunk-size", type=int, default=64, help="the earlier loop's chunk")
    parser.add_argument("--prefix-caching", action="store_true",
                        help="keep vLLM's prefix caching on (off by default here: every variant sees the same "
                             "prompts, so a cache would let later variants skip the prefill earlier ones paid)")
    parser.add_argument("--hf-n", type=int, default=48)
    parser.add_argument("--hf-max-new-tokens", type=int, default=192)
    parser.add_argument("--model", default=str(Layout.default().demo_model), help="checkpoint folder")
    parser.add_argument("--problems", type=Path, default=None, help="validation_mbpp.parquet")
    args = parser.parse_args(argv)
    args.model = str(Path(args.model).resolve()) if Path(args.model).is_dir() else args.model
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp_name:
        tmp = Path(tmp_name)
        problems = _problems(args.problems, tmp)
        if args.part in ("engine", "both"):
            rows += run_engine_part(args, problems, tmp)
        if args.part in ("hf", "both"):
            rows += run_hf_part(args, problems, tmp)
    return rows


if __name__ == "__main__":
    main()
