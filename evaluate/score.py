"""Score generations against their MBPP tests and write the downstream dataset (front door).

Reads any table with ``task_id`` and a completion column (parquet, JSON lines, JSON or CSV;
other columns optional) and the problems parquet; extracts the code of each completion,
runs it in the sandbox under both verdicts (:class:`evaluate.outcomes.Verdict`), and writes
atomically:

``dataset_instruct_temp_0_0.parquet`` (``dataset_base_temp_0_0.parquet`` for
``model_type="base"``): one row per task, ascending ``task_id``, the columns of
:mod:`evaluate.dataset`.

``metadata.json``: counts, stats, verdicts, best layers, model and run provenance (see
data/README.md).

Companion files are read from the generations' folder when present:
``generations_metadata.json`` (model, prompt style, excluded tasks, vLLM version) and
``activations/activations_metadata.json`` (hook point, layers, replay fidelity). Without
them, and without SAE analysis files or ``layers``, the layers are recorded as unknown:
scoring never needs them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from artifacts.errors import InputError
from artifacts.files import read_optional_json, sha256_file, write_json, write_parquet
from artifacts.layout import (
    ACTIVATIONS_METADATA_FILE,
    ACTIVATIONS_SUBDIR,
    DATASET_METADATA_FILE,
    GENERATIONS_METADATA_FILE,
)
from artifacts.schema import dataset as keys
from artifacts.schema import activations as act_keys
from artifacts.schema import generations as gen_keys
from artifacts.tables import read_table
from evaluate.batch import run_programs
from evaluate.dataset import PASSTHROUGH_COLUMNS, build_dataset, build_metadata
from evaluate.extract import extract_code, legacy_code
from evaluate.outcomes import Verdict
from evaluate.sandbox import Limits, Program, Sandbox, SandboxKind
from artifacts.feature_list import FILE_NAMES, BestLayers, resolve_layers
from problems.prompts import build_prompt
from problems.split import read_problems

CHECKPOINT_FILE = ".evaluate_checkpoint.jsonl"
MODEL_TYPES = tuple(keys.DATASET_FILES)
# Generations columns used (with the completion column); any others are ignored.
GENERATION_COLUMNS = ("task_id", "prompt", "generation_time", *PASSTHROUGH_COLUMNS)
UNKNOWN_LAYERS = {
    keys.BEST_LAYERS: {"correct": None, "incorrect": None, "correct_feature_idx": None, "incorrect_feature_idx": None},
    keys.EXTRACTION_LAYERS: None,
    keys.BEST_LAYERS_SOURCE: None,
}


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate_generations` wrote."""

    dataset: pd.DataFrame
    dataset_path: Path
    metadata_path: Path
    metadata: dict


def evaluate_generations(
    *,
    generations_path: str | Path,
    problems_path: str | Path,
    output_dir: str | Path,
    layer_folders: Sequence[str | Path] = (),
    layers: str | None = None,
    sandbox: SandboxKind | str = SandboxKind.BWRAP,
    limits: Limits = Limits(),
    workers: int | None = None,
    progress: bool = True,
    verdict: Verdict | str = Verdict.ROBUST,
    completion_column: str = keys.COMPLETION,
    model_type: str = keys.MODEL_TYPE_INSTRUCT,
) -> EvaluationResult:
    """Evaluate every completion and write the dataset and its metadata to ``output_dir``.

    Args:
        generations_path: table with ``task_id`` and ``completion_column`` (``prompt``,
            ``generation_time``, ``finish_reason``, token counts optional).
        problems_path: the problems parquet (``python cli.py split``).
        output_dir: destination folder (created when missing).
        layer_folders: folders searched for the SAE analysis' best layers, in order.
        layers: ``"16,19"`` to override the extraction layers (default: the replayed
            layers from ``activations_metadata.json``, else the analysis' best layers,
            else unknown).
        sandbox: ``bwrap`` (isolated) or ``process`` (resource limits only).
        limits: limits of every program.
        workers: programs run in parallel [default: CPU count].
        progress: show a progress bar.
        verdict: which verdict fills ``test_passed`` (both are always computed).
        completion_column: the column holding the model output (e.g. ``generated_code``
            in the earlier phases' parquets).
        model_type: ``instruction_tuned`` or ``base``: recorded, and names the dataset file.

    Raises:
        InputError: a missing or malformed input, unknown task ids, or a sandbox that
            cannot run here.
    """
    started = time.monotonic()
    verdict = Verdict(verdict)
    if model_type not in MODEL_TYPES:
        raise InputError(f"--model-type {model_type}: choose one of {', '.join(MODEL_TYPES)}")
    generations_path, problems_path, output_dir = Path(generations_path), Path(problems_path), Path(output_dir)
    generations = read_generations(generations_path, completion_column=completion_column)
    problems = read_problems(problems_path)
    gen_meta = read_optional_json(generations_path.parent / GENERATIONS_METADATA_FILE)
    act_meta = read_optional_json(generations_path.parent / ACTIVATIONS_SUBDIR / ACTIVATIONS_METADATA_FILE)
    if gen_meta and gen_meta.get(gen_keys.COMPLETE) is False:
        raise InputError(
            f"{generations_path.parent / GENERATIONS_METADATA_FILE}: generation is not complete; "
            "rerun `python cli.py generate` to finish it"
        )
    layer_block = _layers(layer_folders, layers, act_meta)
    excluded_ids = _excluded_ids(gen_meta, generations_path)
    rows = join_problems(generations, problems, generations_path=generations_path, problems_path=problems_path)
    overlap = sorted(set(rows["task_id"]) & set(excluded_ids))
    if overlap:
        raise InputError(f"{generations_path}: task id(s) {overlap[:10]} are both generated and listed as excluded")

    box = Sandbox(sandbox, limits=limits)
    box.check()
    extractions = {
        int(r.task_id): extract_code(r.completion, tests=list(r.test_list), setup_code=r.test_setup_code)
        for r in rows.itertuples()
    }
    # Both verdicts of a task start together, so a slow task's two runs use two workers.
    programs: dict[tuple[int, str], Program] = {}
    for r in rows.itertuples():
        task_id, tests = int(r.task_id), tuple(r.test_list)
        if extractions[task_id].code:
            programs[(task_id, Verdict.ROBUST.value)] = Program(extractions[task_id].code, tests, r.test_setup_code)
        programs[(task_id, Verdict.LEGACY.value)] = Program(
            legacy_code(r.completion, prompt=r.prompt), tests, verdict=Verdict.LEGACY
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = output_dir / CHECKPOINT_FILE
    ran = run_programs(programs, sandbox=box, workers=workers, checkpoint=checkpoint, progress=progress)
    results = {v: {task_id: r for (task_id, name), r in ran.items() if name == v.value} for v in Verdict}
    dataset = build_dataset(rows, extractions, results, verdict=verdict)

    dataset_path = output_dir / keys.dataset_file_name(model_type)
    metadata_path = output_dir / DATASET_METADATA_FILE
    metadata = build_metadata(
        dataset,
        problems=problems,
        layers=layer_block,
        excluded_ids=excluded_ids,
        gen_meta=gen_meta,
        act_meta=act_meta,
        sandbox=box.describe(),
        inputs={
            keys.GENERATIONS_FILE: str(generations_path),
            keys.GENERATIONS_SHA256: sha256_file(generations_path),
            keys.PROBLEMS_FILE: str(problems_path),
            keys.PROBLEMS_SHA256: sha256_file(problems_path),
        },
        wall_time_s=time.monotonic() - started,
        verdict=verdict,
        model_type=model_type,
        completion_column=completion_column,
    )
    write_parquet(dataset_path, dataset)
    write_json(metadata_path, metadata)
    checkpoint.unlink(missing_ok=True)  # the dataset holds every result now
    return EvaluationResult(dataset, dataset_path, metadata_path, metadata)


def read_generations(path: Path, *, completion_column: str = keys.COMPLETION) -> pd.DataFrame:
    """A table with at least ``task_id`` and the completion column, one row per task.

    Returns:
        ``task_id`` (int64), ``completion`` (the completion column's values) and whichever of
        :data:`GENERATION_COLUMNS` the table has.
    """
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


def join_problems(
    generations: pd.DataFrame, problems: pd.DataFrame, *, generations_path: Path, problems_path: Path
) -> pd.DataFrame:
    """Generations with their problem's tests, setup code, complexity and prompt, by task id."""
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


def _layers(folders: Sequence[str | Path], layers: str | None, act_meta: dict | None) -> dict:
    """The metadata's layer block: ``--layers``, else the replayed layers, else the analysis', else unknown."""
    replayed = tuple(sorted({int(x) for x in (act_meta or {}).get(act_keys.LAYERS) or ()}))
    has_analysis = any((Path(folder) / name).is_file() for folder in folders for name, _ in FILE_NAMES)
    if layers is None and not replayed:
        # Without analysis files the layers are unknown: scoring does not need them.
        return resolve_layers(folders, None).to_metadata() if has_analysis else dict(UNKNOWN_LAYERS)
    if layers is not None:
        return resolve_layers(folders, layers).to_metadata()
    if has_analysis:
        best: BestLayers = resolve_layers(folders, None)
        if best.extraction_layers == replayed:
            return best.to_metadata()
    return resolve_layers(folders, ",".join(map(str, replayed))).to_metadata()


def _excluded_ids(gen_meta: dict | None, generations_path: Path) -> list[int]:
    ids = (gen_meta or {}).get(gen_keys.EXCLUDED_TASK_IDS, [])
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        where = generations_path.parent / GENERATIONS_METADATA_FILE
        raise InputError(f"{where}: excluded_task_ids must be a list of ints")
    return sorted(ids)
