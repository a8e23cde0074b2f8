"""Read the generations and problems, and score every completion under both verdicts (the stage's steps).

Any table with ``task_id`` and a completion column (parquet, JSON lines, JSON or CSV; other
columns optional) is joined with the problems parquet. Companion files beside the generations
are read when present: ``generations_metadata.json`` (model, prompt style, excluded tasks, vLLM
version) and ``activations/activations_metadata.json`` (hook point, layers block, fidelity).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from artifacts.errors import InputError
from artifacts.files import read_optional_json
from artifacts.schema import dataset as keys
from artifacts.schema import generations as gen_keys
from artifacts.tables import read_table
from evaluate.batch import run_programs
from evaluate.config import EvaluateConfig
from evaluate.dataset import PASSTHROUGH_COLUMNS, build_dataset
from evaluate.extract import extract_code, legacy_code
from evaluate.sandbox import Program, Sandbox
from evaluate.verdict import Verdict
from problems.prompts import build_prompt
from problems.split import read_problems

# Generations columns used (with the completion column); any others are ignored.
GENERATION_COLUMNS = ("task_id", "prompt", "generation_time", *PASSTHROUGH_COLUMNS)


@dataclass(frozen=True)
class Inputs:
    """Everything the evaluation reads, checked."""

    rows: pd.DataFrame  # generations joined with their problems (join_problems), ascending task_id
    excluded_ids: list[int]  # attempted by the generation but left out, ascending
    gen_meta: dict  # generations_metadata.json, {} when absent
    act_meta: dict  # activations_metadata.json, {} when absent


def read_inputs(config: EvaluateConfig) -> Inputs:
    """The generations joined with their problems, and the companion metadata.

    Raises:
        InputError: a missing or malformed input, unknown task ids, an unfinished generation,
            or a task both generated and excluded.
    """
    generations = read_generations(config.generations, completion_column=config.completion_column)
    problems = read_problems(config.problems)
    gen_meta = read_optional_json(config.generations_metadata) or {}
    act_meta = read_optional_json(config.activations_metadata) or {}
    if gen_meta.get(gen_keys.COMPLETE) is False:
        raise InputError(f"{config.generations_metadata}: generation is not complete; "
                         "rerun `python cli.py generate` to finish it")
    excluded_ids = gen_meta.get(gen_keys.EXCLUDED_TASK_IDS, [])
    if not isinstance(excluded_ids, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in excluded_ids):
        raise InputError(f"{config.generations_metadata}: excluded_task_ids must be a list of ints")
    rows = join_problems(generations, problems, generations_path=config.generations, problems_path=config.problems)
    overlap = sorted(set(rows["task_id"]) & set(excluded_ids))
    if overlap:
        raise InputError(f"{config.generations}: task id(s) {overlap[:10]} are both generated and listed as excluded")
    return Inputs(rows, sorted(excluded_ids), gen_meta, act_meta)


def read_generations(path: Path, *, completion_column: str = keys.COMPLETION) -> pd.DataFrame:
    """The table's ``task_id`` (int64, one row per task), ``completion`` (from ``completion_column``)
    and whichever of :data:`GENERATION_COLUMNS` it has."""
    if not path.is_file():
        raise InputError(f"{path}: generations file not found (run `python cli.py generate` or pass --generations)")
    df = read_table(path, what="generations table")
    missing = [c for c in ("task_id", completion_column) if c not in df.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; need task_id and {completion_column}"
            + ("" if completion_column != keys.COMPLETION else " (or pass --completion-column)")
        )
    df = df[[c for c in GENERATION_COLUMNS if c in df.columns]].assign(completion=df[completion_column])
    try:
        df["task_id"] = df["task_id"].astype("int64")
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: task_id must be integers ({exc})") from exc
    dup = df.loc[df["task_id"].duplicated(), "task_id"].tolist()
    if dup:
        raise InputError(f"{path}: task id(s) {sorted(set(dup))[:10]} appear more than once; expected one row per task")
    return df


def join_problems(generations: pd.DataFrame, problems: pd.DataFrame, *, generations_path: Path,
                  problems_path: Path) -> pd.DataFrame:
    """Generations with their problem's tests, setup code, complexity and prompt, ascending task id."""
    unknown = sorted(set(generations["task_id"]) - set(problems["task_id"]))
    if unknown:
        raise InputError(f"{generations_path}: task id(s) {unknown[:10]} are not in {problems_path}")
    keep = ["task_id", "text", "test_list", "test_setup_code", "cyclomatic_complexity"]
    rows = generations.merge(problems[keep], on="task_id", how="left", validate="one_to_one")
    rows["test_list"] = rows["test_list"].map(lambda tests: [str(t) for t in tests])
    rows["test_setup_code"] = rows["test_setup_code"].fillna("").astype(str)
    rows["completion"] = rows["completion"].map(lambda c: c if isinstance(c, str) else "")
    # A foreign table may lack prompts: use the raw prompt of the problem.
    raw_prompts = [build_prompt(t, tests) for t, tests in zip(rows["text"], rows["test_list"])]
    given = rows["prompt"] if "prompt" in rows.columns else pd.Series([None] * len(rows))
    rows["prompt"] = [p if isinstance(p, str) else raw for p, raw in zip(given, raw_prompts)]
    return rows.sort_values("task_id", ignore_index=True)


def score(rows: pd.DataFrame, sandbox: Sandbox, *, verdict: Verdict, workers: int | None,
          progress: bool | None = None) -> pd.DataFrame:
    """Extract each completion's code, run it under both verdicts in parallel, and build the dataset table.

    The robust program runs where code was found, the legacy one for every task; both programs
    of a task start together, so a slow task's two runs use two workers.
    """
    extractions = {}
    programs: dict[tuple[int, Verdict], Program] = {}
    for r in rows.itertuples():
        task_id, tests = int(r.task_id), tuple(r.test_list)
        extractions[task_id] = extract_code(r.completion, tests=tests, setup_code=r.test_setup_code)
        if extractions[task_id].code:
            programs[(task_id, Verdict.ROBUST)] = Program(extractions[task_id].code, tests, r.test_setup_code)
        programs[(task_id, Verdict.LEGACY)] = Program(legacy_code(r.completion, prompt=r.prompt), tests,
                                                      verdict=Verdict.LEGACY)
    ran = run_programs(programs, sandbox=sandbox, workers=workers, progress=progress)
    results = {v: {task_id: result for (task_id, name), result in ran.items() if name is v} for v in Verdict}
    return build_dataset(rows, extractions, results, verdict=verdict)
