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
    """Both backends over the same tasks, alternated ``args.repeats`` times; prints and returns the table."""
    import ray

    from bench.generate import _problems, _tokenized_tasks
    from gen.device_policy import apply_cpu_env_defaults
    from gen.ray_engine import cluster_address, require_ray

    require_ray()
    tokenizer, tasks = _tokenized_tasks(args.model, _problems(args.problems, tmp), args.n)
    apply_cpu_env_defaults()
    config = _engine_config(args, tokenizer)
    embedded, embedded_start_s = _start_embedded(config, tasks)
    # One Ray for every Ray run (the engines did not connect, so they leave it open).
    ray.init(address=cluster_address() or "local", include_dashboard=False)
    try:
        results = _alternate(_drivers(args, config, embedded, tasks, tokenizer, tmp), args.repeats)
    finally:
        embedded.close()
        ray.shutdown()
    rows = _rows(results, n_tasks=len(tasks), embedded_start_s=embedded_start_s)
    _print_summary(args, rows, results, embedded_start_s)
    return rows


def _engine_config(args: argparse.Namespace, tokenizer: Any) -> Any:
    """Greedy float32, eager, prefix caching off: the same :class:`gen.engine.EngineConfig` for both backends."""
    from gen.context import context_length
    from gen.engine import EngineConfig
    from gen.stop_tokens import end_of_turn_ids

    return EngineConfig(
        model=args.model, revision=None, dtype="float32", max_model_len=context_length(args.model),
        max_new_tokens=args.max_new_tokens, stop_token_ids=end_of_turn_ids(args.model, tokenizer).ids,
        enforce_eager=True, enable_prefix_caching=False,
    )


def _start_embedded(config: Any, tasks: list[Any]) -> tuple[Any, float]:
    """The embedded engine, started once and warmed up untimed, and the seconds its start took."""
    from gen.vllm_engine import VllmEngine

    start = time.perf_counter()
    engine = VllmEngine(config)
    start_s = time.perf_counter() - start
    engine.generate_batch([list(t.token_ids) for t in tasks[:8]])  # first requests pay one-off allocations
    return engine, start_s


def _stream(engine: Any, tasks: list[Any], tokenizer: Any, folder: Path) -> tuple[list[list[int]], float]:
    """``generate``'s driver over ``tasks`` into a fresh store: completion ids in task order, engine seconds."""
    from gen.store import GenerationStore
    from gen.stream import run_stream

    store = GenerationStore(folder)
    store.open()
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    stats = run_stream(tasks=tasks, engine=engine, store=store, decode=decode, progress=False)
    table = store.table
    by_id = dict(zip(table.column("task_id").to_pylist(), table.column("completion_token_ids").to_pylist()))
    return [list(by_id[t.task_id]) for t in tasks], stats.engine_time_s


def _drivers(args: argparse.Namespace, config: Any, embedded: Any, tasks: list[Any], tokenizer: Any,
             tmp: Path) -> dict[str, Callable[[int], dict[str, Any]]]:
    """Each backend as ``run index -> {ids, start_s, gen_s}`` (a Ray run's engine start taken out of gen_s)."""
    from gen.ray_engine import RayEngine

    def run_embedded(run: int) -> dict[str, Any]:
        ids, engine_s = _stream(embedded, tasks, tokenizer, tmp / f"embedded-{run}")
        return {"ids": ids, "start_s": 0.0, "gen_s": engine_s}

    def run_ray(run: int) -> dict[str, Any]:
        engine = RayEngine(config, data_parallel_size=args.data_parallel_size, batch_size=args.batch_size)
        try:
            ids, engine_s = _stream(engine, tasks, tokenizer, tmp / f"ray-{run}")
        finally:
            engine.close()
        start_s = engine.startup_s or 0.0
        return {"ids": ids, "start_s": start_s, "gen_s": engine_s - start_s}

    return {"embedded": run_embedded, "ray": run_ray}


def _alternate(drivers: dict[str, Callable[[int], dict[str, Any]]], repeats: int) -> dict[str, list[dict[str, Any]]]:
    """Every backend ``repeats`` times, rotating who goes first; each result gains its wall time and load."""
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for run in range(repeats):
        for variant in VARIANTS[run % 2:] + VARIANTS[: run % 2]:
            t0 = time.perf_counter()
            result = drivers[variant](run)
            result.update(wall_s=time.perf_counter() - t0, load=os.getloadavg()[0])
            results[variant].append(result)
            print(f"  run {run + 1} {variant}: {result['wall_s']:.1f}s wall, {result['gen_s']:.1f}s generating",
                  flush=True)
    return results


def _start_s(variant: str, result: dict[str, Any], embedded_start_s: float) -> float:
    return embedded_start_s if variant == "embedded" else result["start_s"]


def _rows(results: dict[str, list[dict[str, Any]]], *, n_tasks: int, embedded_start_s: float) -> list[dict]:
    """One table row per run: wall, engine start, generation time, tokens/s with and without the start."""
    reference = results["embedded"][0]["ids"]
    identical = all(r["ids"] == reference for v in VARIANTS for r in results[v])
    n_tokens = sum(len(t) for t in reference)
    rows = []
    for variant in VARIANTS:
        for run, r in enumerate(results[variant]):
            start_s = _start_s(variant, r, embedded_start_s)
            rows.append({
                "variant": variant, "run": run + 1, "problems": n_tasks, "tokens": n_tokens, "wall_s": r["wall_s"],
                "engine_start_s": start_s, "generation_s": r["gen_s"], "tok_s": n_tokens / r["gen_s"],
                "tok_s_with_start": n_tokens / (r["gen_s"] + start_s), "load_avg_1m": r["load"], "identical": identical,
            })
    return rows


def _print_summary(args: argparse.Namespace, rows: list[dict], results: dict[str, list[dict[str, Any]]],
                   embedded_start_s: float) -> None:
    """The table, the Ray/embedded tokens/s ratios (generation only, and with the engine start), identity."""
    n_tokens = rows[0]["tokens"]
    mean = {v: statistics.mean(n_tokens / r["gen_s"] for r in results[v]) for v in VARIANTS}
    with_start = {v: statistics.mean(n_tokens / (r["gen_s"] + _start_s(v, r, embedded_start_s)) for r in results[v])
                  for v in VARIANTS}
    print(f"\n== generate backends: {rows[0]['problems']} problems x {args.max_new_tokens} tokens, float32, eager, "
          f"prefix caching off, {args.model}; Ray batch {args.batch_size}, {args.data_parallel_size} replica(s); "
          f"{args.repeats} alternated runs")
    print(format_table(rows))
    print(f"tokens/s generating, mean: embedded {mean['embedded']:.1f}, ray {mean['ray']:.1f}; "
          f"ray / embedded {mean['ray'] / mean['embedded']:.2f}x "
          f"(engine start included: {with_start['ray'] / with_start['embedded']:.2f}x)")
    print(f"identical greedy tokens, embedded and ray: {rows[0]['identical']}")


if __name__ == "__main__":  # vLLM and Ray start processes that re-import the main module
    main()
