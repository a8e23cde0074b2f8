"""The features stage: score every listed SAE feature against ``test_passed``.

For each layer of the feature list (Phase 2.10's, else 2.5's) the layer's SAE columns are
loaded (``features/sae_source.py`` finds the SAE, ``features/sae.py`` reads or builds it), the
run's last-prompt-token vectors are encoded at both hook sites (``resid_pre`` first: the
features were selected there; ``resid_post``: where GemmaScope's SAEs were trained), and each
feature is scored (``features/table.py``, ``features/score.py``). With a comparison run
(another model's activations and dataset) the same features are scored there too. Files,
written atomically, metadata last: ``feature_scores.parquet``, ``compare_feature_scores.parquet``
(with a comparison) and ``features_metadata.json`` (keys in ``artifacts/schema/features.py``).

The stage recomputes whenever it runs (seconds); ``run`` skips it when its completion record
is current (``artifacts/records.py``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from artifacts.errors import InputError
from artifacts.feature_list import ListedFeature, read_feature_list
from artifacts.files import write_json, write_parquet
from artifacts.records import stage_run
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from features.config import FeaturesConfig
from features.runs import Run, compare_block, inputs_block, read_compare_run, read_run
from features.sae import LoadedSae, load_layer_sae
from features.sae_source import (
    Downloader, SaeFile, SaeUnavailable, StandInSae, hf_download, locate_saes, stand_in_saes,
)
from features.score import MAX_FOLDS, N_BOOTSTRAP
from features.stand_in import STAND_IN_SEED
from features.table import score_run


@dataclass(frozen=True)
class FeaturesResult:
    """What the stage wrote."""

    output_dir: Path
    scores_path: Path
    compare_path: Path | None
    metadata_path: Path
    scores: pd.DataFrame
    compare_scores: pd.DataFrame | None
    metadata: dict

    def summary(self) -> str:
        meta = self.metadata
        stand_in = " (demo stand-in SAEs, not GemmaScope)" if meta[fm.STAND_IN_SAES] else ""
        lines = [
            f"features: {meta[fm.N_SCORED]} of {len(self.scores)} feature x hook-point rows scored on "
            f"{meta[fm.N_TASKS]} tasks ({meta[fm.N_PASSED]} passed){stand_in}; scored in {meta[fm.WALL_TIME_S]:.1f}s "
            f"-> {self.scores_path}"
        ]
        if self.compare_scores is not None:
            compare = meta[fm.COMPARE]
            lines.append(
                f"compare {compare[fm.COMPARE_LABEL]}: {int(self.compare_scores['scored'].sum())} rows scored on "
                f"{compare[fm.N_TASKS]} tasks ({compare[fm.N_PASSED]} passed) -> {self.compare_path}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class _Saes:
    """The layers' SAEs, loaded, and the layers without one."""

    loaded: dict[int, LoadedSae]
    unavailable: list[SaeUnavailable]

    @property
    def skipped(self) -> dict[int, str]:
        return {u.layer: u.reason for u in self.unavailable}


def run(config: FeaturesConfig, *, download: Downloader = hf_download) -> FeaturesResult:
    """Score the listed features on this run (and on a comparison run) under the stage's completion record.

    Args:
        config: the stage's settings.
        download: ``hf_hub_download``-like function (tests inject one).

    Raises:
        InputError: bad input, an SAE not matching the activations, or (``require_all``) a
            layer without an SAE.
    """
    # Checked before the record, so that bad input leaves no output folder behind.
    feature_list, local = config.feature_list_path(), config.sae_paths()
    with stage_run(config, overwrite=config.overwrite):
        start = time.perf_counter()
        features = read_feature_list(feature_list)
        ours, other = _read_runs(config, sorted({f.layer for f in features}))
        saes = _load_saes(config, features, local, (ours, other), download)
        scores = score_run(ours, features, saes.loaded, saes.skipped, config.seed)
        compare_scores = None if other is None else score_run(other, features, saes.loaded, saes.skipped, config.seed)
        result = _write(config, scores, compare_scores, _metadata(
            config, feature_list, features, ours, other, saes, scores, wall=round(time.perf_counter() - start, 3)))
    for skipped in saes.unavailable:
        print(f"warning: layer {skipped.layer} not scored: {skipped.reason}", file=sys.stderr)
    return result


def _read_runs(config: FeaturesConfig, layers: Sequence[int]) -> tuple[Run, Run | None]:
    """This run, and the comparison run when asked for."""
    ours = read_run(config.dataset, config.activations, layers)
    if config.compare_dir is None:
        return ours, None
    other = read_compare_run(config.compare_dataset_path(), config.compare_activations, layers, config.compare_site)
    return ours, other


def _load_saes(config: FeaturesConfig, features: Sequence[ListedFeature], local: dict[int, Path],
               runs: tuple[Run, Run | None], download: Downloader) -> _Saes:
    """Find every layer's SAE, load its listed columns and check them against both runs' vectors."""
    layers = sorted({f.layer for f in features})
    d_model = runs[0].d_model()
    if config.demo_saes:
        found: list[SaeFile | StandInSae] = stand_in_saes(layers, local=local, seed=STAND_IN_SEED)
        unavailable: list[SaeUnavailable] = []
    else:
        found, unavailable = locate_saes(layers, local=local, repo=config.sae_repo, download=download)
    if unavailable and config.require_all:
        detail = "; ".join(f"layer {u.layer}: {u.reason}" for u in unavailable)
        raise InputError(f"--require-all: {len(unavailable)} layer(s) without an SAE ({detail})")
    loaded = {}
    for source in found:
        sae = load_layer_sae(source, [f.feature_idx for f in features if f.layer == source.layer], d_model=d_model)
        for scored in (r for r in runs if r is not None):
            _check_d_model(sae, scored)
        loaded[sae.layer] = sae
    return _Saes(loaded, unavailable)


def _check_d_model(sae: LoadedSae, run: Run) -> None:
    for (hook, layer), v in run.vectors.vectors.items():
        if layer == sae.layer and v.d_model != sae.columns.d_model:
            raise InputError(
                f"SAE of layer {layer} ({sae.sae_id}) has d_model {sae.columns.d_model}, but {run.label}'s {hook} "
                f"vectors have {v.d_model}; pass --sae {layer}=PATH with an SAE of this model (the demo: --demo-saes)"
            )


def _sae_record(sae: LoadedSae) -> dict:
    """One entry of the metadata's ``saes``."""
    source, columns = sae.source, sae.columns
    where = ({"path": str(source.path), "size": source.path.stat().st_size, "mtime_ns": source.path.stat().st_mtime_ns}
             if isinstance(source, SaeFile) else {"seed": source.seed})
    return {fm.SAE_LAYER: sae.layer, fm.SAE_ID: sae.sae_id, **where, fm.SAE_SHA256: sae.sha256,
            fm.SAE_FORMAT: columns.file_format, fm.SAE_STAND_IN: columns.stand_in, "d_model": columns.d_model,
            "d_sae": columns.d_sae, "n_columns": int(columns.feature_idx.size), "description": columns.description}


def _metadata(config: FeaturesConfig, feature_list: Path, features: Sequence[ListedFeature], ours: Run,
              other: Run | None, saes: _Saes, scores: pd.DataFrame, *, wall: float) -> dict:
    """``features_metadata.json`` (keys in ``artifacts/schema/features.py``)."""
    records = [_sae_record(saes.loaded[layer]) for layer in sorted(saes.loaded)]
    return {
        fm.CREATED: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        fm.INPUTS: inputs_block(ours, feature_list),
        fm.MODEL: ours.model(),
        fm.PRIMARY_HOOK_POINT: HOOK_POINTS[0],
        fm.SEED: config.seed, fm.N_BOOTSTRAP: N_BOOTSTRAP, fm.MAX_FOLDS: MAX_FOLDS,
        fm.HOOK_POINTS_KEY: list(HOOK_POINTS),
        fm.SAES: records,
        fm.STAND_IN_SAES: any(r[fm.SAE_STAND_IN] for r in records),
        fm.SKIPPED_LAYERS: [
            {fm.SKIPPED_LAYER: u.layer, fm.SKIPPED_REASON: u.reason,
             fm.SKIPPED_FEATURES: _feature_names(features, u.layer)}
            for u in saes.unavailable
        ],
        **ours.counts(),
        fm.N_FEATURES: len(features),
        fm.N_SCORED: int(scores["scored"].sum()),
        fm.VECTOR_SOURCES: ours.vectors.sources,
        fm.COMPARE: None if other is None else {**compare_block(other), **other.counts()},
        fm.WALL_TIME_S: wall,
    }


def _feature_names(features: Sequence[ListedFeature], layer: int) -> list[str]:
    return [f"{f.group}[{f.rank}] #{f.feature_idx}" for f in features if f.layer == layer]


def _write(config: FeaturesConfig, scores: pd.DataFrame, compare_scores: pd.DataFrame | None,
           metadata: dict) -> FeaturesResult:
    """Write the score tables, then the metadata; remove a comparison that no longer applies."""
    folder = config.folder
    scores_path, compare_path = folder / fm.FEATURE_SCORES_FILE, folder / fm.COMPARE_SCORES_FILE
    write_parquet(scores_path, scores)
    if compare_scores is not None:
        write_parquet(compare_path, compare_scores)
    elif compare_path.is_file():
        compare_path.unlink()  # a comparison of an earlier run that no longer applies
    metadata_path = folder / fm.FEATURES_METADATA_FILE
    write_json(metadata_path, metadata)
    return FeaturesResult(folder, scores_path, compare_path if compare_scores is not None else None, metadata_path,
                          scores, compare_scores, metadata)
