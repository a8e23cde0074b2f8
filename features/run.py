"""Front door of the features stage: score every listed SAE feature against ``test_passed``.

For each layer of the feature list (Phase 2.10's, else 2.5's) the layer's SAE columns are
loaded (``features/sae_source.py`` finds the file, ``features/sae.py`` reads it), the run's
last-prompt-token vectors are encoded at both hook points (``resid_pre`` first: the features
were selected there; ``resid_post``: where GemmaScope's SAEs were trained), and each feature is
scored (``features/score.py``). With a comparison run (another model's activations and dataset)
the same features are scored there too. Files, written atomically, metadata last:
``feature_scores.parquet``, ``compare_feature_scores.parquet`` (with a comparison) and
``features_metadata.json`` (keys in ``artifacts/schema/features.py``). A rerun whose inputs hash
the same as the stored ``inputs_sha256`` keeps the stored scores.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from artifacts.errors import InputError
from artifacts.files import read_optional_json, sha256_file, write_json, write_parquet
from artifacts.layout import DATASET_METADATA_FILE, TASK_ACTIVATIONS_SUBDIR
from artifacts.schema.activations import FEATURE_VECTORS_FILE
from artifacts.schema import features as fm
from artifacts.feature_list import ListedFeature, read_feature_list
from features.demo_saes import build_demo_saes
from features.sae import SaeColumns, jumprelu_encode, load_sae_columns
from features.sae_source import (
    DEFAULT_SAE_REPO, SAE_D_SAE, Downloader, SaeFile, SaeUnavailable, hf_download, local_sae_files, locate_saes,
)
from features.score import MAX_FOLDS, N_BOOTSTRAP, FeatureStats, score_feature
from features.vectors import LayerVectors, RunVectors, read_run_vectors
from report.load import read_dataset

# Bump when a change to the scoring changes the numbers: stored scores are then recomputed.
SCORING_VERSION = 1
DATASET_COLUMNS = ("task_id", "test_passed")


@dataclass(frozen=True)
class FeaturesResult:
    """What :func:`score_features` wrote (or kept)."""

    output_dir: Path
    scores_path: Path
    compare_path: Path | None
    metadata_path: Path
    scores: pd.DataFrame
    compare_scores: pd.DataFrame | None
    metadata: dict
    reused: bool


@dataclass(frozen=True)
class _Run:
    """One run's labels and vectors."""

    label: str
    dataset_path: Path
    passed: dict[int, bool]
    vectors: RunVectors


def score_features(
    *,
    dataset_path: Path,
    activations_dir: Path,
    output_dir: Path,
    feature_list_path: Path,
    sae_paths: Mapping[int, Path] | None = None,
    sae_repo: str = DEFAULT_SAE_REPO,
    demo_saes_dir: Path | None = None,
    require_all: bool = False,
    seed: int = 0,
    compare_activations_dir: Path | None = None,
    compare_dataset_path: Path | None = None,
    compare_site: str | None = None,
    overwrite: bool = False,
    download: Downloader = hf_download,
) -> FeaturesResult:
    """Score the listed features on this run (and on a comparison run); write the files.

    Args:
        dataset_path: the evaluated dataset (``task_id``, ``test_passed``).
        activations_dir: this run's activations folder (``features/vectors.py`` lists what it reads).
        output_dir: destination folder (``DATA/phase7_3/features``).
        feature_list_path: the ``top_20_features.json`` (or ``top_20_latents.json``) to score.
        sae_paths: ``--sae`` files by layer; they win over every other source.
        sae_repo: hub repository in GemmaScope's layout for the other layers.
        demo_saes_dir: use (building when missing) the demo's stand-in SAEs from this folder
            for the layers without ``--sae``, instead of the hub.
        require_all: a layer without an SAE is an error instead of being skipped.
        seed: seeds the bootstrap and the cross-validation folds.
        compare_activations_dir: another run's ``task_activations`` folder (or its parent).
        compare_dataset_path: that run's dataset [default: the one ``dataset*.parquet`` two
            folders above its ``task_activations``].
        compare_site: the site of that run's ``arr_0`` when its metadata does not say.
        overwrite: recompute even when the inputs are unchanged.
        download: ``hf_hub_download``-like function (tests inject one).

    Raises:
        InputError: bad input, an SAE not matching the activations, or (``require_all``) a
            layer without an SAE.
    """
    start = time.perf_counter()
    output_dir = Path(output_dir)
    features = read_feature_list(feature_list_path)
    layers = sorted({f.layer for f in features})
    ours = _read_run(Path(dataset_path), Path(activations_dir), layers, label="this run")
    other = None
    if compare_activations_dir is not None:
        other = _read_compare(Path(compare_activations_dir), compare_dataset_path, layers, compare_site)
    d_model = _d_model(ours.vectors, "this run")

    local = dict(sae_paths or {})
    if demo_saes_dir is not None:
        stand_ins = build_demo_saes(
            folder=Path(demo_saes_dir), features=features, d_model=d_model, layers=[l for l in layers if l not in local]
        )
        found = sorted(local_sae_files(layers, local) + stand_ins, key=lambda s: s.layer)
        unavailable: list[SaeUnavailable] = []
    else:
        found, unavailable = locate_saes(layers, local=local, repo=sae_repo, download=download)
    if unavailable and require_all:
        detail = "; ".join(f"layer {u.layer}: {u.reason}" for u in unavailable)
        raise InputError(f"--require-all: {len(unavailable)} layer(s) without an SAE ({detail})")

    metadata_path = output_dir / fm.FEATURES_METADATA_FILE
    scores_path = output_dir / fm.FEATURE_SCORES_FILE
    compare_path = output_dir / fm.COMPARE_SCORES_FILE
    previous = read_optional_json(metadata_path)
    sae_records = [_sae_record(s, previous) for s in found]
    inputs = _inputs(ours, feature_list_path)
    settings = {
        fm.SCORING_VERSION: SCORING_VERSION, fm.SEED: seed, fm.N_BOOTSTRAP: N_BOOTSTRAP, fm.MAX_FOLDS: MAX_FOLDS,
        fm.HOOK_POINTS_KEY: list(fm.HOOK_POINTS),
    }
    digest = _digest(
        settings, inputs, ours, sae_records, [u.layer for u in unavailable],
        None if other is None else (_dataset_digest(other), other.vectors.sha256()),
    )
    if not overwrite and previous and previous.get(fm.INPUTS_SHA256) == digest and scores_path.is_file() \
            and (other is None or compare_path.is_file()):
        metadata = dict(previous)
        metadata[fm.REUSED] = True
        metadata[fm.LAST_RUN_WALL_TIME_S] = round(time.perf_counter() - start, 3)
        write_json(metadata_path, metadata)
        return FeaturesResult(
            output_dir, scores_path, compare_path if other else None, metadata_path, pd.read_parquet(scores_path),
            pd.read_parquet(compare_path) if other else None, metadata, reused=True,
        )

    saes: dict[int, tuple[SaeFile, SaeColumns]] = {}
    for sae_file in found:
        idx = [f.feature_idx for f in features if f.layer == sae_file.layer]
        columns = load_sae_columns(sae_file.path, idx, expected_d_sae=SAE_D_SAE)
        _check_d_model(sae_file, columns, ours.vectors, "this run")
        if other is not None:
            _check_d_model(sae_file, columns, other.vectors, other.label)
        saes[sae_file.layer] = (sae_file, columns)
    for record in sae_records:
        _, columns = saes[record[fm.SAE_LAYER]]
        record.update({"format": columns.file_format, fm.SAE_STAND_IN: columns.stand_in, "d_model": columns.d_model,
                       "d_sae": columns.d_sae, "n_columns": int(columns.feature_idx.size),
                       "description": columns.description})
    skipped = {u.layer: u.reason for u in unavailable}
    scores = _score_run(ours, features, saes, skipped, seed)
    compare_scores = _score_run(other, features, saes, skipped, seed) if other is not None else None

    write_parquet(scores_path, scores)
    if compare_scores is not None:
        write_parquet(compare_path, compare_scores)
    elif compare_path.is_file():
        compare_path.unlink()  # a comparison of an earlier run that no longer applies
    wall = round(time.perf_counter() - start, 3)
    metadata = {
        fm.CREATED: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        fm.INPUTS_SHA256: digest,
        fm.INPUTS: inputs,
        fm.MODEL: (ours.vectors.metadata or {}).get("model"),  # activations_metadata.json's "model"
        fm.PRIMARY_HOOK_POINT: fm.HOOK_POINTS[0],
        **settings,
        fm.SAES: sae_records,
        fm.STAND_IN_SAES: any(r[fm.SAE_STAND_IN] for r in sae_records),
        fm.SKIPPED_LAYERS: [
            {fm.SKIPPED_LAYER: u.layer, fm.SKIPPED_REASON: u.reason,
             fm.SKIPPED_FEATURES: _feature_names(features, u.layer)}
            for u in unavailable
        ],
        **_counts(ours, scores),
        fm.N_FEATURES: len(features),
        fm.N_SCORED: int(scores["scored"].sum()),
        fm.VECTOR_SOURCES: ours.vectors.sources,
        fm.COMPARE: None if other is None else {
            fm.COMPARE_LABEL: other.label,
            "dataset": str(other.dataset_path),
            "dataset_sha256": sha256_file(other.dataset_path),
            "activations_dir": str(other.vectors.activations_dir),
            fm.VECTOR_SOURCES: other.vectors.sources,
            **_counts(other, compare_scores),
        },
        fm.WALL_TIME_S: wall,
        fm.REUSED: False,
        fm.LAST_RUN_WALL_TIME_S: wall,
    }
    write_json(metadata_path, metadata)
    return FeaturesResult(
        output_dir, scores_path, compare_path if other else None, metadata_path, scores, compare_scores, metadata,
        reused=False,
    )


def _read_run(dataset_path: Path, activations_dir: Path, layers: Sequence[int], *, label: str,
              arr0_site: str | None = None) -> _Run:
    dataset = read_dataset(dataset_path, required=DATASET_COLUMNS)
    passed = dict(zip(dataset["task_id"].tolist(), dataset["test_passed"].tolist()))
    vectors = read_run_vectors(activations_dir, layers=layers, task_ids=list(passed), arr0_site=arr0_site)
    return _Run(label, dataset_path, passed, vectors)


def _read_compare(folder: Path, dataset_path: Path | None, layers: Sequence[int], site: str | None) -> _Run:
    # DIR is a run's task_activations folder (its parent holds the metadata and the vectors file), or that parent.
    is_parent = (folder / TASK_ACTIVATIONS_SUBDIR).is_dir() or (folder / FEATURE_VECTORS_FILE).is_file()
    activations_dir = folder if is_parent else folder.parent
    if dataset_path is None:
        root = activations_dir.parent
        candidates = sorted(root.glob("dataset*.parquet"))
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise InputError(
                f"--compare-activations {folder}: cannot tell that run's dataset ({found} in {root}); "
                "pass --compare-dataset"
            )
        dataset_path = candidates[0]
    run = _read_run(Path(dataset_path), activations_dir, layers, label="", arr0_site=site)
    meta = read_optional_json(Path(dataset_path).parent / DATASET_METADATA_FILE) or {}
    # metadata.json's "model_name" (evaluate), else activations_metadata.json's "model" (replay).
    model = meta.get("model_name") or (run.vectors.metadata or {}).get("model")
    label = Path(str(model)).name if model else f"compare ({Path(dataset_path).stem})"
    return _Run(label, run.dataset_path, run.passed, run.vectors)


def _d_model(vectors: RunVectors, label: str) -> int:
    widths = {v.d_model for v in vectors.vectors.values()}
    if not widths:
        raise InputError(
            f"{vectors.activations_dir}: {label} stores no vectors at any listed layer; rerun replay-activations"
        )
    if len(widths) > 1:
        raise InputError(f"{vectors.activations_dir}: vectors of different widths {sorted(widths)}")
    return widths.pop()


def _check_d_model(sae_file: SaeFile, columns: SaeColumns, vectors: RunVectors, label: str) -> None:
    for (hook, layer), v in vectors.vectors.items():
        if layer == sae_file.layer and v.d_model != columns.d_model:
            raise InputError(
                f"SAE of layer {layer} ({sae_file.sae_id}) has d_model {columns.d_model}, but {label}'s {hook} "
                f"vectors have {v.d_model}; pass --sae {layer}=PATH with an SAE of this model (the demo: --demo-saes)"
            )


def _score_run(
    run: _Run,
    features: Sequence[ListedFeature],
    saes: Mapping[int, tuple[SaeFile, SaeColumns]],
    skipped: Mapping[int, str],
    seed: int,
) -> pd.DataFrame:
    rows = []
    encoded: dict[tuple[str, int], np.ndarray] = {}
    for f in features:
        for hook_index, hook in enumerate(fm.HOOK_POINTS):
            positive_class = "passed" if f.group == "correct" else "failed"
            key = (hook, f.layer)
            vectors = run.vectors.vectors.get(key)
            reason = skipped.get(f.layer) or (run.vectors.not_stored.get(key) if vectors is None else None)
            if reason is None and f.layer not in saes:
                reason = "no SAE for this layer"
            if reason is not None:
                rows.append(_row(f, hook, positive_class, reason=reason, vectors=vectors, run=run))
                continue
            sae_file, columns = saes[f.layer]
            if key not in encoded:
                encoded[key] = jumprelu_encode(vectors.x, columns)
            acts = encoded[key][:, columns.column(f.feature_idx)]
            passed = np.array([run.passed[int(t)] for t in vectors.task_ids], dtype=bool)
            positive = passed if positive_class == "passed" else ~passed
            rng = np.random.default_rng([seed, f.layer, f.feature_idx, hook_index])
            stats = score_feature(acts, positive, rng=rng)
            rows.append(_row(f, hook, positive_class, reason=None, vectors=vectors, run=run, sae_id=sae_file.sae_id,
                             stats=stats, passed=passed))
    return pd.DataFrame([asdict(r) for r in rows], columns=list(fm.SCORE_COLUMNS))


def _row(
    f: ListedFeature,
    hook: str,
    positive_class: str,
    *,
    reason: str | None,
    vectors: LayerVectors | None,
    run: _Run,
    sae_id: str | None = None,
    stats: FeatureStats | None = None,
    passed: np.ndarray | None = None,
) -> fm.ScoreRow:
    nan = float("nan")
    if stats is None:
        n = 0 if vectors is None else int(vectors.task_ids.size)
        n_passed = 0 if vectors is None else int(sum(run.passed[int(t)] for t in vectors.task_ids))
        values = dict(auroc=nan, auroc_ci_low=nan, auroc_ci_high=nan, fire_frac=nan, fire_frac_passed=nan,
                      fire_frac_failed=nan, mean_act_passed=nan, mean_act_failed=nan, f1_cv=nan, f1_cv_folds=0,
                      f1_threshold=nan, f1_all_positive=nan)
    else:
        n, n_passed = stats.n_tasks, int(passed.sum())
        by_class = {  # the stats are oriented by the feature's class; the file says passed/failed
            "passed": (stats.fire_frac_positive, stats.mean_act_positive),
            "failed": (stats.fire_frac_negative, stats.mean_act_negative),
        } if positive_class == "passed" else {
            "passed": (stats.fire_frac_negative, stats.mean_act_negative),
            "failed": (stats.fire_frac_positive, stats.mean_act_positive),
        }
        values = dict(auroc=stats.auroc, auroc_ci_low=stats.auroc_ci_low, auroc_ci_high=stats.auroc_ci_high,
                      fire_frac=stats.fire_frac, fire_frac_passed=by_class["passed"][0],
                      fire_frac_failed=by_class["failed"][0], mean_act_passed=by_class["passed"][1],
                      mean_act_failed=by_class["failed"][1], f1_cv=stats.f1_cv, f1_cv_folds=stats.f1_cv_folds,
                      f1_threshold=stats.f1_threshold, f1_all_positive=stats.f1_all_positive)
    return fm.ScoreRow(
        group=f.group, rank=f.rank, layer=f.layer, feature_idx=f.feature_idx, hook_point=hook,
        positive_class=positive_class, scored=stats is not None, not_scored_reason=reason,
        vector_source=run.vectors.sources.get(hook) if vectors is not None else None, sae_id=sae_id,
        n_tasks=n, n_passed=n_passed, n_failed=n - n_passed, **values,
    )


def _feature_names(features: Sequence[ListedFeature], layer: int) -> list[str]:
    return [f"{f.group}[{f.rank}] #{f.feature_idx}" for f in features if f.layer == layer]


def _counts(run: _Run, scores: pd.DataFrame) -> dict:
    with_vectors: set[int] = set()
    for v in run.vectors.vectors.values():
        with_vectors.update(int(t) for t in v.task_ids)
    n_passed = sum(run.passed[t] for t in with_vectors)
    return {
        fm.N_TASKS: len(with_vectors),
        fm.N_PASSED: int(n_passed),
        fm.N_FAILED: len(with_vectors) - int(n_passed),
        fm.N_MISSING: len(set(run.passed) - with_vectors),
    }


def _inputs(run: _Run, feature_list_path: Path) -> dict:
    return {
        "dataset": str(run.dataset_path),
        "dataset_sha256": sha256_file(run.dataset_path),
        "activations_dir": str(run.vectors.activations_dir),
        "vectors_sha256": run.vectors.sha256(),
        "feature_list": str(feature_list_path),
        "feature_list_sha256": sha256_file(feature_list_path),
    }


def _dataset_digest(run: _Run) -> str:
    return hashlib.sha256(json.dumps(sorted(run.passed.items())).encode()).hexdigest()


def _sae_record(sae_file: SaeFile, previous: dict | None) -> dict:
    # A file's sha256 is recomputed only when its size or modification time changed (300 MB each).
    stat = sae_file.path.stat()
    record = {fm.SAE_LAYER: sae_file.layer, fm.SAE_ID: sae_file.sae_id, "path": str(sae_file.path),
              "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    for old in (previous or {}).get(fm.SAES) or []:
        if all(old.get(k) == record[k] for k in ("path", "size", "mtime_ns")) and old.get(fm.SAE_SHA256):
            record[fm.SAE_SHA256] = old[fm.SAE_SHA256]
            return record
    record[fm.SAE_SHA256] = sha256_file(sae_file.path)
    return record


def _digest(settings: dict, inputs: dict, ours: _Run, saes: list[dict], unavailable: list[int], compare) -> str:
    # What the scores depend on: labels, vectors, feature list, SAE bytes, settings. Paths and
    # times are left out, so moving the data folder keeps the scores.
    payload = {
        "settings": settings,
        "dataset": _dataset_digest(ours),
        "vectors": inputs["vectors_sha256"],
        "features": inputs["feature_list_sha256"],
        "saes": [(r[fm.SAE_LAYER], r[fm.SAE_SHA256]) for r in saes],
        "unavailable": unavailable,
        "compare": compare,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

