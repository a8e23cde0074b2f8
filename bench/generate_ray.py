"""Benchmark the generate stage's two backends: the embedded vLLM engine vs Ray Data LLM (``--backend ray``).

The same N prompts (the first N validation problems, raw style) x ``--max-new-tokens``, float32,
greedy, eager, prefix caching off, both driven the way ``generate`` drives them
(:func:`gen.stream.run_stream` committing to a real store every 16 completions), alternated
``--repeats`` times in one process (who goes first rotates). One engine each:

- ``embedded``: one :class:`gen.vllm_engine.VllmEngine`, started once (start time reported
  apart), warmed up untimed;
- ``ray``: one :class:`gen.ray_engine.RayEngine` per run on one Ray (``RAY_ADDRESS``, else a
  local one started here); Ray Data starts the replica's engine when a run starts, so every
  Ray run pays an engine start. Its generation time is the run's engine time minus that start
  (Ray Data start to the first request entering the engine, :attr:`RayEngine.startup_s`).

Prints wall time, engine start, generation time and tokens/s of every run, the Ray/embedded
tokens/s ratio (generation only, and with the start included), and whether both gave the same
greedy tokens.

    python -m bench.generate_ray [--n 64] [--max-new-tokens 128] [--repeats 2] [--batch-size 8]
                                 [--data-parallel-size 1] [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from artifacts.layout import Layout
from bench.table import format_table

BASE_DEMO_MODEL = Path("/work/base-data/models/smollm2-135m-instruct")  # this workplace's prepared copy
VARIANTS = ("embedded", "ray")


def default_model() -> str:
    """The demo model: the data folder's, else this workplace's prepared copy."""
    local = Layout.default().demo_model
    return str(local if (local / "config.json").is_file() or not BASE_DEMO_MODEL.is_dir() else BASE_DEMO_MODEL)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m bench.generate_ray", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="problems (the first N)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="alternated runs of each backend")
    parser.add_argument("--batch-size", type=int, default=8, help="Ray Data batch (rows that come back together)")
    parser.add_argument("--data-parallel-size", type=int, default=1, help="Ray replicas")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the demo model)")
    parser.add_argument("--problems", type=Path, default=None, help="validation_mbpp.parquet")
    args = parser.parse_args(argv)
    model = args.model or default_model()
    args.model = str(Path(model).resolve()) if Path(model).is_dir() else model
    with tempfile.TemporaryDirectory(prefix="bench-generate-ray-") as tmp_name:
        return run(args, Path(tmp_name))


def run(args: argparse.Namespace, tmp: Path) -> list[dict]:
    import ray
    from transformers import AutoTokenizer

    from bench.generate import _problems
    from gen.context import context_length
    from gen.device_policy import apply_cpu_env_defaults
    from gen.engine import EngineConfig
    from gen.plan import build_tasks, select_rows
    from gen.ray_engine import RayEngine, cluster_address, require_ray
    from gen.stop_tokens import end_of_turn_ids
    from gen.store import GenerationStore
    from gen.stream import run_stream
    from gen.vllm_engine import VllmEngine
    from problems.split import read_problems

    require_ray()
    problems = _problems(args.problems, tmp)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tasks = build_tasks(select_rows(read_problems(problems), start=None, end=None, limit=args.n), tokenizer, "raw")
    apply_cpu_env_defaults()
    config = EngineConfig(
        model=args.model, revision=None, dtype="float32", max_model_len=context_length(args.model),
        max_new_tokens=args.max_new_tokens, stop_token_ids=end_of_turn_ids(args.model, tokenizer).ids,
        enforce_eager=True, enable_prefix_caching=False,
    )
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731

    def stream(engine: Any, label: str) -> tuple[list[list[int]], float]:
        store = GenerationStore(tmp / label)
        store.open()
        stats = run_stream(tasks=tasks, engine=engine, store=store, decode=decode, progress=False)
        by_id = dict(zip(store.table.column("task_id").to_pylist(), store.table.column("completion_token_ids").to_pylist()))
        return [list(by_id[t.task_id]) for t in tasks], stats.engine_time_s

    start = time.perf_counter()
    embedded = VllmEngine(config)
    embedded_start_s = time.perf_counter() - start
    embedded.generate_batch([list(t.token_ids) for t in tasks[:8]])  # warm-up, untimed

    # One Ray for every Ray run (the engines' connection is ours, so they leave it open).
    ray.init(address=cluster_address() or "local", include_dashboard=False)

    def run_embedded(run: int) -> dict[str, Any]:
        ids, engine_s = stream(embedded, f"embedded-{run}")
        return {"ids": ids, "start_s": 0.0, "gen_s": engine_s}

    def run_ray(run: int) -> dict[str, Any]:
        engine = RayEngine(config, data_parallel_size=args.data_parallel_size, batch_size=args.batch_size)
        try:
            ids, engine_s = stream(engine, f"ray-{run}")
        finally:
            engine.close()
        start_s = engine.startup_s or 0.0
        return {"ids": ids, "start_s": start_s, "gen_s": engine_s - start_s}

    drivers: dict[str, Callable[[int], dict[str, Any]]] = {"embedded": run_embedded, "ray": run_ray}
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    rows = []
    try:
        for run in range(args.repeats):
            order = VARIANTS[run % 2:] + VARIANTS[: run % 2]  # rotate who goes first
            for variant in order:
                t0 = time.perf_counter()
                result = drivers[variant](run)
                result["wall_s"] = time.perf_counter() - t0
                result["load"] = os.getloadavg()[0]
                results[variant].append(result)
                print(f"  run {run + 1} {variant}: {result['wall_s']:.1f}s wall, {result['gen_s']:.1f}s generating",
                      flush=True)
    finally:
        embedded.close()
        ray.shutdown()

    reference = results["embedded"][0]["ids"]
    identical = all(r["ids"] == reference for v in VARIANTS for r in results[v])
    n_tokens = sum(len(t) for t in reference)
    for variant in VARIANTS:
        for run, r in enumerate(results[variant]):
            rows.append({
                "variant": variant, "run": run + 1, "problems": len(tasks), "tokens": n_tokens,
                "wall_s": r["wall_s"], "engine_start_s": embedded_start_s if variant == "embedded" else r["start_s"],
                "generation_s": r["gen_s"], "tok_s": n_tokens / r["gen_s"],
                "tok_s_with_start": n_tokens / (r["gen_s"] + (embedded_start_s if variant == "embedded" else r["start_s"])),
                "load_avg_1m": r["load"], "identical": identical,
            })
    mean = {v: statistics.mean(n_tokens / r["gen_s"] for r in results[v]) for v in VARIANTS}
    with_start = {
        "embedded": statistics.mean(n_tokens / (r["gen_s"] + embedded_start_s) for r in results["embedded"]),
        "ray": statistics.mean(n_tokens / (r["gen_s"] + r["start_s"]) for r in results["ray"]),
    }
    print(f"\n== generate backends: {len(tasks)} problems x {args.max_new_tokens} tokens, float32, eager, prefix caching "
          f"off, {args.model}; Ray batch {args.batch_size}, {args.data_parallel_size} replica(s); "
          f"{args.repeats} alternated runs")
    print(format_table(rows))
    print(f"tokens/s generating, mean: embedded {mean['embedded']:.1f}, ray {mean['ray']:.1f}; "
          f"ray / embedded {mean['ray'] / mean['embedded']:.2f}x "
          f"(engine start included: {with_start['ray'] / with_start['embedded']:.2f}x)")
    print(f"identical greedy tokens, embedded and ray: {identical}")
    return rows


if __name__ == "__main__":  # vLLM and Ray start processes that re-import the main module
    main()
