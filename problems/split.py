"""Select the validation problems and write the Phase 0.1 parquet every stage reads.

Output schema (``validation_mbpp.parquet``, sorted by ``task_id``):
``task_id`` int64, ``text`` str, ``code`` str, ``test_list`` list<str>,
``test_setup_code`` str, ``challenge_test_list`` list<str>,
``cyclomatic_complexity`` int64.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from artifacts.errors import InputError
from artifacts.files import sha256_file, write_json, write_parquet
from artifacts.layout import PROBLEMS_FILE, SPLIT_METADATA_FILE
from problems.complexity import cyclomatic_complexity
from problems.sources import load_mbpp

SPLIT_NAMES = ("sae", "hyperparams", "validation")
SPLIT_RATIOS = (5, 1, 4)  # 50/10/40, dealt round-robin in blocks of ten
N_BINS = 10
DEFAULT_SEED = 42
COLUMNS = ("task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list", "cyclomatic_complexity")


@dataclass(frozen=True)
class SplitResult:
    """What :func:`build_validation_split` wrote."""

    problems: pd.DataFrame
    parquet_path: Path
    metadata_path: Path
    metadata: dict

    def summary(self) -> str:
        cc = self.metadata["complexity"]
        return (f"wrote {self.parquet_path} ({len(self.problems)} problems, complexity {cc['min']}..{cc['max']}, "
                f"mean {cc['mean']:.2f}) from {self.metadata['source']}")


def read_task_ids(path: str | Path) -> list[int]:
    """Read a JSON list of integer task ids, rejecting duplicates and non-integers."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: task-id file not found")
    try:
        ids = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InputError(f"{path}: expected a JSON list of integer task ids")
    dup = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dup:
        raise InputError(f"{path}: duplicate task id(s) {dup[:10]}")
    return ids


def stratified_split(complexity: pd.Series, *, seed: int = DEFAULT_SEED) -> dict[str, list[int]]:
    """Split task ids (``complexity``'s index) into sae / hyperparams / validation, sorted.

    The research method: 10 equal-width bins over complexity, each bin shuffled by one seeded
    numpy generator, then all tasks dealt round-robin, bin after bin, in blocks of ten: 5 to
    sae, 1 to hyperparams, 4 to validation. On the 974 MBPP problems this gives the research
    split's sizes (489 / 97 / 388) but not its ids (the original shuffle order is lost): pass
    the published id list with ``--task-ids`` to reproduce the research split itself.
    """
    rng = np.random.RandomState(seed)
    values = complexity.to_numpy(dtype=float)
    edges = np.linspace(values.min(), values.max(), N_BINS + 1)
    bins = np.clip(np.digitize(values, edges[1:-1], right=False), 0, N_BINS - 1)
    ids = complexity.index.to_numpy()
    dealt = []
    for b in range(N_BINS):
        members = ids[bins == b].copy()
        rng.shuffle(members)
        dealt += members.tolist()
    pattern = itertools.cycle([name for name, k in zip(SPLIT_NAMES, SPLIT_RATIOS) for _ in range(k)])
    names = [next(pattern) for _ in dealt]
    return {name: sorted(int(t) for t, n in zip(dealt, names) if n == name) for name in SPLIT_NAMES}


def build_validation_split(
    *, mbpp_path: str | Path | None, task_ids_path: str | Path | None, output_dir: str | Path, seed: int = DEFAULT_SEED
) -> SplitResult:
    """Build ``validation_mbpp.parquet`` and ``split_metadata.json`` in ``output_dir``.

    Args:
        mbpp_path: MBPP file, or ``None`` for the Hugging Face hub.
        task_ids_path: JSON list of validation task ids, or ``None`` to recompute the
            stratified split with ``seed``.
        output_dir: destination folder (created when missing).
        seed: seed of the stratified split (ignored with ``task_ids_path``).
    """
    mbpp, source = load_mbpp(mbpp_path)
    mbpp = mbpp.assign(cyclomatic_complexity=mbpp["code"].map(cyclomatic_complexity).astype("int64"))
    if task_ids_path is not None:
        ids = read_task_ids(task_ids_path)
        unknown = sorted(set(ids) - set(mbpp["task_id"]))
        if unknown:
            raise InputError(f"{task_ids_path}: task id(s) not in MBPP source {source}: {unknown[:10]}")
        selection = f"task ids from {task_ids_path}"
    else:
        ids = stratified_split(mbpp.set_index("task_id")["cyclomatic_complexity"], seed=seed)["validation"]
        selection = f"stratified split (10 complexity bins, seed {seed}, 50/10/40)"
    problems = mbpp[mbpp["task_id"].isin(ids)].sort_values("task_id").reset_index(drop=True).loc[:, list(COLUMNS)]
    cc = problems["cyclomatic_complexity"]
    given = task_ids_path is not None
    metadata = {
        "creation_timestamp": datetime.now(timezone.utc).isoformat(),
        "source": source,
        "source_sha256": sha256_file(mbpp_path) if mbpp_path is not None else None,
        "task_ids_file": str(task_ids_path) if given else None,
        "task_ids_sha256": sha256_file(task_ids_path) if given else None,
        "selection": selection,
        "seed": None if given else seed,
        "n_source_problems": int(len(mbpp)),
        "n_problems": int(len(problems)),
        "n_with_test_setup_code": int((problems["test_setup_code"].str.len() > 0).sum()),
        "complexity": {
            "min": int(cc.min()) if len(cc) else None,
            "max": int(cc.max()) if len(cc) else None,
            "mean": float(cc.mean()) if len(cc) else None,
            "median": float(cc.median()) if len(cc) else None,
            "counts": {str(k): int(v) for k, v in cc.value_counts().sort_index().items()},
        },
    }
    output_dir = Path(output_dir)
    write_parquet(output_dir / PROBLEMS_FILE, problems)
    write_json(output_dir / SPLIT_METADATA_FILE, metadata)
    return SplitResult(problems, output_dir / PROBLEMS_FILE, output_dir / SPLIT_METADATA_FILE, metadata)


def read_problems(path: str | Path) -> pd.DataFrame:
    """Read ``validation_mbpp.parquet``, checking its columns (the stage contract)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: problems file not found (run `python cli.py split` first)")
    df = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    return df
