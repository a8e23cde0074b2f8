"""Benchmark the generate stage against the earlier approach, in one run on the same prompts.

(a) ours: ``gen.generate.generate`` (vLLM offline engine, chunks of ``--chunk-size``
prompts); (b) baseline: Hugging Face ``generate`` one problem at a time. Both float32 on
the demo model, fed the same prompt token ids, greedy, ``--max-new-tokens`` each. Prints
problems, tokens, load and generation wall time, tokens/s, the speed ratio and the
fraction of problems whose greedy tokens are identical. Target on a 2-core CPU: ratio
>= 5x with >= 90% identical.

    python -m bench.generate [--n 64] [--max-new-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from artifacts.layout import MBPP_ENV, TASK_IDS_ENV, Layout


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


def _table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(c for r in rows for c in r))
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="validation problems (the first N)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--model", default=str(Layout.default().demo_model), help="checkpoint folder")
    parser.add_argument("--problems", type=Path, default=None, help="validation_mbpp.parquet")
    parser.add_argument("--chunk-size", type=int, default=64, help="our chunk (batch) size")
    parser.add_argument("--enforce-eager", action="store_true", help="skip vLLM's compilation")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from gen.generate import build_tasks, generate, select_rows
    from gen.hf_reference import hf_greedy
    from gen.stop_tokens import end_of_turn_ids
    from problems.split import read_problems

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp_name:
        tmp = Path(tmp_name)
        problems = _problems(args.problems, tmp)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        tasks = build_tasks(select_rows(read_problems(problems), start=None, end=None, limit=args.n), tokenizer, "raw")
        stops = end_of_turn_ids(args.model, tokenizer).ids

        # The baseline runs first, in a process vLLM has not touched yet.
        start = time.perf_counter()
        timings: list[float] = []
        hf = hf_greedy(args.model, [list(t.token_ids) for t in tasks], max_new_tokens=args.max_new_tokens,
                       stop_token_ids=stops, timings=timings, progress=True)
        hf_wall = time.perf_counter() - start
        hf_gen = sum(timings)
        hf_tokens = sum(len(t) for t in hf)

        result = generate(
            problems_path=problems, output_dir=tmp / "out", model=args.model, limit=args.n,
            max_new_tokens=args.max_new_tokens, dtype="float32", chunk_size=args.chunk_size,
            enforce_eager=args.enforce_eager, progress=False,
        )
        ours = pd.read_parquet(result.parquet_path)
    if ours["task_id"].tolist() != sorted(t.task_id for t in tasks):
        raise RuntimeError("the two sides generated different problems")
    by_id = {t.task_id: (t.token_ids, c) for t, c in zip(tasks, hf)}
    hf_sorted = [by_id[i][1] for i in ours["task_id"]]
    if any(tuple(map(int, p)) != by_id[i][0] for i, p in zip(ours["task_id"], ours["prompt_token_ids"])):
        raise RuntimeError("the two sides were fed different prompt ids")
    hf = hf_sorted
    load = (load_before + os.getloadavg()[0]) / 2

    identical = sum(list(map(int, a)) == b for a, b in zip(ours["completion_token_ids"], hf))
    ours_tps = result.tokens_per_s
    hf_tps = hf_tokens / hf_gen if hf_gen else 0.0
    common = {"identical": f"{identical}/{len(hf)}", "load_avg_1m": round(load, 2), "cpus": os.cpu_count()}
    rows = [
        {"variant": "ours: vLLM chunks", "problems": result.n_generated, "tokens": result.n_completion_tokens,
         "load_s": result.engine_load_time_s, "gen_s": result.generation_time_s, "wall_s": result.wall_time_s,
         "tok_s": ours_tps,
         "speedup": ours_tps / hf_tps if hf_tps else float("nan"), **common},
        {"variant": "baseline: HF one at a time", "problems": len(hf), "tokens": hf_tokens,
         "load_s": hf_wall - hf_gen, "gen_s": hf_gen, "wall_s": hf_wall, "tok_s": hf_tps, "speedup": 1.0, **common},
    ]
    print(f"\n== generate: {args.n} problems, max_new_tokens {args.max_new_tokens}, float32, {args.model}")
    print(_table(rows))
    print(f"speed ratio: {rows[0]['speedup']:.2f}x in tokens/s of generation, "
          f"{hf_wall / result.wall_time_s:.2f}x in wall time with model loading; identical greedy tokens "
          f"{identical}/{len(hf)} ({identical / max(1, len(hf)):.0%})")
    return rows


if __name__ == "__main__":
    main()
