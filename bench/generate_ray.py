"""Benchmark the generate stage's two backends: the embedded vLLM engine vs Ray Data LLM (``--backend ray``).

The same N prompts (the first N validation problems, raw style) x ``--max-new-tokens``, float32,
greedy, eager, prefix caching off, both driven the way ``generate`` drives them
(:func:`gen.stream.run_stream` into a real store), alternated ``--repeats`` times in one process:

- ``embedded`` (the baseline): one :class:`gen.vllm_engine.VllmEngine`, started once (start
  time reported apart), warmed up untimed;
- ``ray``: one :class:`gen.ray_engine.RayEngine` per run on one Ray (``RAY_ADDRESS``, else a
  local one started here). Every Ray run starts its replica's engine; its generation time is
  the run's engine time minus that start (:attr:`RayEngine.startup_s`).

Prints each run's wall time, engine start, generation time and tokens/s, the Ray/embedded
tokens/s ratio (generation only, and with the start), and whether both gave the same tokens.

    python -m bench.generate_ray [--n 64] [--max-new-tokens 128] [--repeats 2] [--batch-size 8]
                                 [--data-parallel-size 1] [--model DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from artifacts.layout import Layout
from bench.generate import _problems, _tokenized_tasks, alternate, engine_config, resolve_model, start_engine, stream
from bench.table import format_table

BASE_DEMO_MODEL = Path("/work/base-data/models/smollm2-135m-instruct")  # this workplace's prepared copy


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
    args.model = resolve_model(args.model or default_model())
    with tempfile.TemporaryDirectory(prefix="bench-generate-ray-") as tmp_name:
        return run(args, Path(tmp_name))


def run(args: argparse.Namespace, tmp: Path) -> list[dict]:
    """Both backends over the same tasks, alternated ``args.repeats`` times; prints and returns the table."""
    import ray

    from gen.device_policy import apply_cpu_env_defaults
    from gen.ray_engine import RayEngine, cluster_address, require_ray

    require_ray()
    tokenizer, tasks = _tokenized_tasks(args.model, _problems(args.problems, tmp), args.n)
    apply_cpu_env_defaults()
    config = engine_config(args.model, tokenizer, args.max_new_tokens)
    embedded, embedded_start_s = start_engine(config, tasks)

    def run_embedded(run: int) -> tuple[list[list[int]], float, float]:
        ids, engine_s = stream(embedded, tasks, tokenizer, tmp / f"embedded-{run}")
        return ids, embedded_start_s, engine_s

    def run_ray(run: int) -> tuple[list[list[int]], float, float]:
        engine = RayEngine(config, data_parallel_size=args.data_parallel_size, batch_size=args.batch_size)
        try:
            ids, engine_s = stream(engine, tasks, tokenizer, tmp / f"ray-{run}")
        finally:
            engine.close()
        start_s = engine.startup_s or 0.0
        return ids, start_s, engine_s - start_s

    # One Ray for every Ray run (the engines did not connect, so they leave it open).
    ray.init(address=cluster_address() or "local", include_dashboard=False)
    try:
        results = alternate({"embedded": run_embedded, "ray": run_ray}, args.repeats)
    finally:
        embedded.close()
        ray.shutdown()
    reference = results["embedded"][0][0][0]
    identical = all(out[0] == reference for runs in results.values() for out, _, _ in runs)
    n_tokens = sum(len(t) for t in reference)
    rows = [{"variant": variant, "run": run + 1, "problems": len(tasks), "tokens": n_tokens, "wall_s": wall,
             "engine_start_s": start_s, "generation_s": gen_s, "tok_s": n_tokens / gen_s,
             "tok_s_with_start": n_tokens / (gen_s + start_s), "load_avg_1m": load, "identical": identical}
            for variant, runs in results.items() for run, ((_, start_s, gen_s), wall, load) in enumerate(runs)]
    mean = {v: statistics.mean(r["tok_s"] for r in rows if r["variant"] == v) for v in results}
    with_start = {v: statistics.mean(r["tok_s_with_start"] for r in rows if r["variant"] == v) for v in results}
    print(f"\n== generate backends: {len(tasks)} problems x {args.max_new_tokens} tokens, float32, eager, "
          f"prefix caching off, {args.model}; Ray batch {args.batch_size}, {args.data_parallel_size} replica(s); "
          f"{args.repeats} alternated runs")
    print(format_table(rows))
    print(f"tokens/s generating, mean: embedded {mean['embedded']:.1f}, ray {mean['ray']:.1f}; "
          f"ray / embedded {mean['ray'] / mean['embedded']:.2f}x "
          f"(engine start included: {with_start['ray'] / with_start['embedded']:.2f}x)")
    print(f"identical greedy tokens, embedded and ray: {identical}")
    return rows


if __name__ == "__main__":  # vLLM and Ray start processes that re-import the main module
    main()
