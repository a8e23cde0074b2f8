"""Benchmark the generate stage: streaming vs the earlier chunked loop vs one ``LLM.generate``; vs HF.

Both parts run the demo model in float32, greedy, on the same prompt token ids.
(a) ``engine``: one warmed-up vLLM engine (prefix caching off unless ``--prefix-caching``)
    driven three ways, alternated ``--repeats`` times in one process: ``streaming`` (what
    ``generate`` does), ``chunked`` (the earlier loop, one ``LLM.generate`` per ``--chunk-size``
    prompts) and ``one-call`` (the baseline: one ``LLM.generate`` over all N); plus decode-step
    counts from the real completion lengths (chunks wait for their longest completion; on a
    GPU that ratio is the speed-up).
(b) ``hf``: ``gen.stage.run`` with its defaults, engine start included, against the baseline
    Hugging Face ``generate`` one problem at a time, model load included.

    python -m bench.generate [--part engine|hf|both] [--n 128] [--max-new-tokens 256] [--repeats 2]
                             [--hf-n 48] [--hf-max-new-tokens 192]
"""

from __future__ import annotations

import argparse
import heapq
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from artifacts.layout import MBPP_ENV, TASK_IDS_ENV, Layout
from bench.table import format_table

VARIANTS = ("streaming", "chunked", "one-call")


def _problems(path: Path | None, tmp: Path) -> Path:
    """The validation problems: ``--problems``, the data folder's, or built from $PVA_MBPP/$PVA_TASK_IDS."""
    default = Layout.default().problems
    if path is not None or default.is_file():
        return path or default
    from problems.split import build_validation_split

    return build_validation_split(
        mbpp_path=os.environ.get(MBPP_ENV), task_ids_path=os.environ.get(TASK_IDS_ENV), output_dir=tmp / "phase0_1"
    ).parquet_path


def _tokenized_tasks(model: str, problems: Path, limit: int) -> tuple[Any, list[Any]]:
    """The model's tokenizer and the first ``limit`` validation problems as raw-prompt tasks."""
    from transformers import AutoTokenizer

    from gen.plan import build_tasks, select_rows
    from problems.split import read_problems

    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = select_rows(read_problems(problems), start=None, end=None, limit=limit)
    return tokenizer, build_tasks(rows, tokenizer, "raw")


def engine_config(model: str, tokenizer: Any, max_new_tokens: int, *, prefix_caching: bool = False) -> Any:
    """Greedy float32, eager: the :class:`gen.engine.EngineConfig` every benchmarked engine uses."""
    from gen.context import context_length
    from gen.engine import EngineConfig
    from gen.stop_tokens import end_of_turn_ids

    return EngineConfig(model=model, revision=None, dtype="float32", max_model_len=context_length(model),
                        max_new_tokens=max_new_tokens, stop_token_ids=end_of_turn_ids(model, tokenizer).ids,
                        enforce_eager=True, enable_prefix_caching=prefix_caching)


def start_engine(config: Any, tasks: list[Any]) -> tuple[Any, float]:
    """A vLLM engine, warmed up untimed (first requests pay one-off allocations), and its start seconds."""
    from gen.vllm_engine import VllmEngine

    start = time.perf_counter()
    engine = VllmEngine(config)
    start_s = time.perf_counter() - start
    engine.generate_batch([list(t.token_ids) for t in tasks[:8]])
    return engine, start_s


def stream(engine: Any, tasks: list[Any], tokenizer: Any, folder: Path) -> tuple[list[list[int]], float]:
    """``generate``'s driver into a fresh store: completion ids in task order, and engine seconds."""
    from gen.store import GenerationStore
    from gen.stream import run_stream

    store = GenerationStore(folder)
    store.open()
    stats = run_stream(tasks=tasks, engine=engine, store=store, progress=False,
                       decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True))
    by_id = dict(zip(store.table.column("task_id").to_pylist(), store.table.column("completion_token_ids").to_pylist()))
    return [list(by_id[t.task_id]) for t in tasks], stats.engine_time_s


def alternate(drivers: dict[str, Callable[[int], Any]], repeats: int) -> dict[str, list[tuple[Any, float, float]]]:
    """``{variant: [(result, wall seconds, load average after), ...]}``, rotating who goes first each round."""
    names = list(drivers)
    results: dict[str, list[tuple[Any, float, float]]] = {v: [] for v in names}
    for run in range(repeats):
        for variant in names[run % len(names):] + names[: run % len(names)]:
            t0 = time.perf_counter()
            out = drivers[variant](run)
            results[variant].append((out, time.perf_counter() - t0, os.getloadavg()[0]))
            print(f"  run {run + 1} {variant}: {results[variant][-1][1]:.1f}s", flush=True)
    return results


def chunked_steps(lengths: Sequence[int], chunk: int) -> int:
    """Sequential decode steps of one batch per chunk: each chunk waits for its longest completion."""
    return sum(max(lengths[s : s + chunk]) for s in range(0, len(lengths), chunk))


def continuous_steps(lengths: Sequence[int], width: int) -> int:
    """Decode steps of continuous batching at most ``width`` wide: a freed slot takes the next prompt."""
    slots = [0] * min(width, len(lengths))  # all equal: already a heap
    for n in lengths:
        heapq.heapreplace(slots, slots[0] + n)
    return max(slots, default=0)


def run_engine_part(args: argparse.Namespace, problems: Path, tmp: Path) -> list[dict]:
    """Part (a): one engine driven three ways over the same prompts, alternated; prints the table."""
    from gen.device_policy import apply_cpu_env_defaults

    tokenizer, tasks = _tokenized_tasks(args.model, problems, args.n)
    prompts = [list(t.token_ids) for t in tasks]
    apply_cpu_env_defaults()
    config = engine_config(args.model, tokenizer, args.max_new_tokens, prefix_caching=args.prefix_caching)
    engine, start_s = start_engine(config, tasks)
    step = args.chunk_size
    drivers = {
        "streaming": lambda run: stream(engine, tasks, tokenizer, tmp / f"stream-{run}")[0],
        "chunked": lambda run: [list(c.token_ids) for s in range(0, len(prompts), step)
                                for c in engine.generate_batch(prompts[s : s + step])],
        "one-call": lambda run: [list(c.token_ids) for c in engine.generate_batch(prompts)],
    }
    loads = [os.getloadavg()[0]]
    try:
        results = alternate(drivers, args.repeats)
    finally:
        width = engine.max_num_seqs or len(prompts)
        engine.close()
    if any(out != runs[0][0] for runs in results.values() for out, _, _ in runs):
        raise RuntimeError("greedy tokens changed between repeats")
    baseline = results["one-call"][0][0]
    n_tokens = sum(len(t) for t in baseline)
    identical = all(runs[0][0] == baseline for runs in results.values())
    loads += [load for runs in results.values() for _, _, load in runs]
    base_tps = [n_tokens / wall for _, wall, _ in results["one-call"]]
    rows = []
    for variant in VARIANTS:
        tps = [n_tokens / wall for _, wall, _ in results[variant]]
        rows.append({
            "variant": variant, "problems": len(prompts), "tokens": n_tokens,
            "wall_s": " / ".join(f"{wall:.1f}" for _, wall, _ in results[variant]),
            "tok_s": " / ".join(f"{x:.0f}" for x in tps),
            "vs_one_call": " / ".join(f"{a / b:.2f}" for a, b in zip(tps, base_tps)),
            "identical": identical, "engine_start_s": round(start_s, 1),
            "load_avg_1m": f"{min(loads):.2f}-{max(loads):.2f}",
        })
    lengths = [len(t) for t in baseline]
    steps_chunked, steps_one = chunked_steps(lengths, step), continuous_steps(lengths, width)
    print(f"\n== generate, one engine: {len(prompts)} problems x {args.max_new_tokens} tokens, float32, eager, "
          f"prefix caching {'on' if args.prefix_caching else 'off'}, {args.model}; {args.repeats} alternated runs "
          "(tok/s of each run)")
    print(format_table(rows))
    print(f"decode steps from these completion lengths: chunks of {step} {steps_chunked}, "
          f"one continuous batch (max_num_seqs {width}) {steps_one}: {steps_chunked / max(1, steps_one):.2f}x")
    print(f"identical greedy tokens across streaming, chunked and one-call: {identical}")
    return rows


def run_hf_part(args: argparse.Namespace, problems: Path, tmp: Path) -> list[dict]:
    """Part (b): ``generate`` with its defaults against Hugging Face one problem at a time; prints the table."""
    from demo.hf_reference import hf_greedy
    from gen.config import GenerateConfig
    from gen.stage import run as generate
    from gen.stop_tokens import end_of_turn_ids

    tokenizer, tasks = _tokenized_tasks(args.model, problems, args.hf_n)
    # The baseline first, in a process vLLM has not touched yet.
    load_hf = [os.getloadavg()[0]]
    start = time.perf_counter()
    timings: list[float] = []
    hf = hf_greedy(args.model, [list(t.token_ids) for t in tasks], max_new_tokens=args.hf_max_new_tokens,
                   stop_token_ids=end_of_turn_ids(args.model, tokenizer).ids, timings=timings, progress=True)
    hf_wall = time.perf_counter() - start
    load_hf.append(os.getloadavg()[0])
    load_ours = [os.getloadavg()[0]]
    start = time.perf_counter()
    result = generate(GenerateConfig(problems_path=problems, output_dir=tmp / "ours", model=args.model,
                                     limit=args.hf_n, max_new_tokens=args.hf_max_new_tokens), progress=False)
    ours_wall = time.perf_counter() - start
    load_ours.append(os.getloadavg()[0])
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


def resolve_model(model: str) -> str:
    """A checkpoint folder as an absolute path; a hub id as given."""
    return str(Path(model).resolve()) if Path(model).is_dir() else model


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
    args.model = resolve_model(args.model)
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
