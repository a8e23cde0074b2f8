"""Evaluation wall time on the validation reference solutions, sequential against parallel.

``python -m bench.evaluate [--workers 1,2] [--sandbox bwrap,process]``. Every variant runs
``evaluate.stage.run`` (extraction, one sandboxed process per program, the
parquet and metadata writes) on the same generations table: each problem's reference
``code`` as its completion, so every program should pass. The first variant is the baseline
(bwrap, one worker). Wall times depend on what else runs: the table prints the load
average before each variant (on a 2-core machine, above 2 means other work competed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


from artifacts.layout import MBPP_ENV, TASK_IDS_ENV
from evaluate.batch import default_workers
from evaluate.sandbox import Limits
from evaluate.config import EvaluateConfig
from evaluate.stage import run
from problems.split import build_validation_split
from bench.table import format_table

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__)
    parser.add_argument("--workers", default=f"1,{default_workers()}", help="comma-separated; first is the baseline")
    parser.add_argument("--sandbox", default="bwrap,process", help="comma-separated kinds; the first is the baseline")
    parser.add_argument("--timeout", type=float, default=Limits().timeout_s, help="seconds per program (default 10)")
    parser.add_argument("--mbpp", type=Path, default=os.environ.get(MBPP_ENV) or SHARED / "mbpp" / "mbpp.jsonl")
    parser.add_argument("--task-ids", type=Path, default=os.environ.get(TASK_IDS_ENV)
                        or SHARED / "pva_reference" / "validation_task_ids.json")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    kinds = args.sandbox.split(",")
    variants = [(kinds[0], workers[0])] + [(k, w) for k in kinds for w in workers if (k, w) != (kinds[0], workers[0])]

    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        tmp = Path(tmp)
        split = build_validation_split(mbpp_path=args.mbpp, task_ids_path=args.task_ids, output_dir=tmp)
        problems_path, problems = split.parquet_path, split.problems
        generations = tmp / "reference.parquet"
        problems[["task_id"]].assign(completion=problems["code"]).to_parquet(generations)
        rows = []
        for kind, n_workers in variants:
            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            result = run(EvaluateConfig(data_dir=tmp, generations_path=generations, problems_path=problems_path,
                                        output_dir=tmp / f"{kind}_{n_workers}", sandbox=kind, timeout=args.timeout,
                                        workers=n_workers), progress=False)
            wall = time.perf_counter() - start
            dataset = result.dataset
            failed = dataset.loc[~dataset["test_passed"], "task_id"].tolist()
            rows.append({"sandbox": kind, "workers": n_workers, "tasks": len(dataset),
                         "passed": int(dataset["test_passed"].sum()), "failed_ids": ",".join(map(str, failed)) or "-",
                         "wall_s": wall, "ms_per_task": 1000 * wall / max(1, len(dataset)), "load_before": load_before})
        for row in rows:
            row["speedup"] = rows[0]["wall_s"] / row["wall_s"]
    load = os.getloadavg()
    print(f"\n== evaluate: {len(problems)} reference solutions, timeout {args.timeout:g} s, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
