"""The features stage: load each layer's SAE once (``sae``), read it out on this run and a comparison run
(``readout``), score and judge every listed feature x site (``table``, ``verdict``), and write the
tables atomically, ``features_metadata.json`` last (names in ``artifacts/schema/features.py``).

Sites: ``resid_pre``, where the features were selected, and ``resid_post``, where GemmaScope's SAEs
were trained.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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
from features.readout import Readout, read_out_layer
from features.runs import Run, compare_block, inputs_block, read_compare_run, read_run
from features.sae import (
    STAND_IN_SEED, Downloader, LoadedSae, SaeFile, SaeUnavailable, hf_download, load_layer_sae, locate_saes,
    parse_sae_options, stand_in_saes,
)
from features.table import difference_table, score_run
from features.verdict import rules
from stats.bootstrap import N_BOOTSTRAP
from stats.folds import MAX_FOLDS
from stats.null_latents import N_NULL_LATENTS
from stats.permutation import N_PERMUTATIONS


@dataclass(frozen=True)
class Tables:
    """The tables the stage writes (the comparison's None without one)."""

    scores: pd.DataFrame
    fits: pd.DataFrame
    probes: pd.DataFrame
    compare_scores: pd.DataFrame | None = None
    differences: pd.DataFrame | None = None


@dataclass(frozen=True)
class FeaturesResult:
    """What the stage wrote."""

    output_dir: Path
    tables: Tables
    metadata: dict

    @property
    def scores(self) -> pd.DataFrame:
        return self.tables.scores

    @property
    def compare_scores(self) -> pd.DataFrame | None:
        return self.tables.compare_scores

    @property
    def scores_path(self) -> Path:
        return self.output_dir / fm.FEATURE_SCORES_FILE

    @property
    def compare_path(self) -> Path | None:
        return self.output_dir / fm.COMPARE_SCORES_FILE if self.compare_scores is not None else None

    @property
    def metadata_path(self) -> Path:
        return self.output_dir / fm.FEATURES_METADATA_FILE

    def summary(self) -> str:
        meta = self.metadata
        stand_in = " (demo stand-in SAEs, not GemmaScope)" if meta[fm.STAND_IN_SAES] else ""
        verdicts = Counter(self.scores.loc[self.scores["hook_point"] == HOOK_POINTS[0], "verdict"])
        lines = [
            f"features: {meta[fm.N_SCORED]} of {len(self.scores)} feature x hook-point rows scored on "
            f"{meta[fm.N_TASKS]} tasks ({meta[fm.N_PASSED]} passed){stand_in}; scored in {meta[fm.WALL_TIME_S]:.1f}s "
            f"-> {self.scores_path}",
            f"verdicts at {HOOK_POINTS[0]}: " + ", ".join(f"{verdicts.get(v, 0)} {v}" for v in fm.VERDICTS),
        ]
        if self.compare_scores is not None:
            compare = meta[fm.COMPARE]
            lines.append(
                f"compare {compare[fm.COMPARE_LABEL]}: {int(self.compare_scores['scored'].sum())} rows scored on "
                f"{compare[fm.N_TASKS]} tasks ({compare[fm.N_PASSED]} passed) -> {self.compare_path}"
            )
        return "\n".join(lines)


def run(config: FeaturesConfig, *, download: Downloader = hf_download) -> FeaturesResult:
    """Read out and score the listed features on this run (and a comparison run) under the stage's completion record.

    ``download`` is ``hf_hub_download``-like (tests inject one). InputError on bad input, an SAE not
    matching the activations, or (``require_all``) a layer without an SAE.
    """
    # Checked before the record, so that bad input leaves no output folder behind.
    feature_list, local = config.feature_list_path(), parse_sae_options(config.sae_options)
    with stage_run(config, overwrite=config.overwrite):
        start = time.perf_counter()
        features = read_feature_list(feature_list)
        layers = sorted({f.layer for f in features})
        ours = read_run(config.dataset, config.activations, layers)
        other = None if config.compare_dir is None else read_compare_run(
            config.compare_dataset_path(), config.compare_activations, layers, config.compare_site)
        if config.demo_saes:
            found, unavailable = stand_in_saes(layers, local=local, seed=STAND_IN_SEED), []
        else:
            found, unavailable = locate_saes(layers, local=local, repo=config.sae_repo, download=download)
        if unavailable and config.require_all:
            detail = "; ".join(f"layer {u.layer}: {u.reason}" for u in unavailable)
            raise InputError(f"--require-all: {len(unavailable)} layer(s) without an SAE ({detail})")
        readout, records = _read_out(config, features, found, ours, other)
        tables = _score(config, features, readout, records, unavailable, ours, other)
        metadata = _metadata(config, feature_list, features, (ours, other), records, unavailable, tables,
                             seconds=dict(readout.seconds), wall=round(time.perf_counter() - start, 3))
        result = _write(config, tables, metadata)
    for skipped in unavailable:
        print(f"warning: layer {skipped.layer} not scored: {skipped.reason}", file=sys.stderr)
    return result


def _read_out(config: FeaturesConfig, features: Sequence[ListedFeature], found: Sequence, ours: Run,
              other: Run | None) -> tuple[Readout, dict[int, dict]]:
    """Each layer's SAE, loaded one at a time, read out on both runs; the metadata's record of each SAE."""
    runs = [(fm.RUN_THIS, ours)] + ([(fm.RUN_COMPARE, other)] if other is not None else [])
    readout, records = Readout(), {}
    for source in found:
        listed = [f.feature_idx for f in features if f.layer == source.layer]
        start = time.perf_counter()
        loaded = load_layer_sae(source, listed, d_model=ours.d_model())
        readout.seconds["sae_load"] += time.perf_counter() - start
        for _, scored in runs:
            _check_d_model(loaded, scored)
        read_out_layer(loaded, listed, runs, seed=config.seed, token_vectors=config.token_vectors, out=readout)
        records[loaded.layer] = _sae_record(loaded, len(set(listed)))
        del loaded  # one layer's matrices at a time
    return readout, records


def _check_d_model(loaded: LoadedSae, run: Run) -> None:
    for (hook, layer), v in run.vectors.vectors.items():
        if layer == loaded.layer and v.d_model != loaded.sae.d_model:
            raise InputError(
                f"SAE of layer {layer} ({loaded.sae_id}) has d_model {loaded.sae.d_model}, but {run.label}'s {hook} "
                f"vectors have {v.d_model}; pass --sae {layer}=PATH with an SAE of this model (the demo: --demo-saes)"
            )


def _score(config: FeaturesConfig, features: Sequence[ListedFeature], readout: Readout, records: dict[int, dict],
           unavailable: Sequence[SaeUnavailable], ours: Run, other: Run | None) -> Tables:
    """The score tables of both runs, the comparison's differences, and the fit and probe tables."""
    start = time.perf_counter()
    ids = {layer: r[fm.SAE_ID] for layer, r in records.items()}
    skipped = {u.layer: u.reason for u in unavailable}
    reference = fm.RUN_COMPARE if other is not None else None
    scores = score_run(fm.RUN_THIS, ours, features, readout, ids, skipped, config.seed, reference=reference)
    fits = pd.DataFrame([asdict(r) for r in readout.fits], columns=list(fm.SAE_FIT_COLUMNS))
    probes = pd.DataFrame([asdict(r) for r in readout.probes], columns=list(fm.PROBE_COLUMNS))
    readout.seconds["statistics"] += time.perf_counter() - start
    if other is None:
        return Tables(scores, fits, probes)
    start = time.perf_counter()
    compare_scores = score_run(fm.RUN_COMPARE, other, features, readout, ids, skipped, config.seed)
    differences = difference_table(features, readout.acts, config.seed)
    readout.seconds["compare"] += time.perf_counter() - start
    return Tables(scores, fits, probes, compare_scores, differences)


def _sae_record(loaded: LoadedSae, n_listed: int) -> dict:
    """One entry of the metadata's ``saes``."""
    source = loaded.source
    where = ({"path": str(source.path), "size": source.path.stat().st_size, "mtime_ns": source.path.stat().st_mtime_ns}
             if isinstance(source, SaeFile) else {"seed": source.seed})
    return {fm.SAE_LAYER: loaded.layer, fm.SAE_ID: loaded.sae_id, **where, fm.SAE_SHA256: loaded.sha256,
            fm.SAE_FORMAT: loaded.file_format, fm.SAE_STAND_IN: loaded.stand_in, "d_model": loaded.sae.d_model,
            "d_sae": loaded.sae.d_sae, "n_listed": n_listed, "description": loaded.description}


def _metadata(config: FeaturesConfig, feature_list: Path, features: Sequence[ListedFeature],
              runs: tuple[Run, Run | None], records: dict[int, dict], unavailable: Sequence[SaeUnavailable],
              tables: Tables, *, seconds: dict[str, float], wall: float) -> dict:
    """``features_metadata.json`` (keys in ``artifacts/schema/features.py``)."""
    ours, other = runs
    listed = [records[layer] for layer in sorted(records)]
    skipped = [{fm.SKIPPED_LAYER: u.layer, fm.SKIPPED_REASON: u.reason,
                fm.SKIPPED_FEATURES: [f"{f.group}[{f.rank}] #{f.feature_idx}" for f in features if f.layer == u.layer]}
               for u in unavailable]
    return {
        fm.CREATED: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        fm.INPUTS: inputs_block(ours, feature_list),
        fm.MODEL: ours.model(),
        fm.PRIMARY_HOOK_POINT: HOOK_POINTS[0],
        fm.SEED: config.seed, fm.N_BOOTSTRAP: N_BOOTSTRAP, fm.MAX_FOLDS: MAX_FOLDS,
        fm.N_PERMUTATIONS: N_PERMUTATIONS, fm.N_NULL_LATENTS: N_NULL_LATENTS, fm.TOKEN_VECTORS: config.token_vectors,
        fm.RULES: rules(None if other is None else other.label),
        fm.HOOK_POINTS_KEY: list(HOOK_POINTS),
        fm.SAES: listed,
        fm.STAND_IN_SAES: any(r[fm.SAE_STAND_IN] for r in listed),
        fm.SKIPPED_LAYERS: skipped,
        **ours.counts(),
        fm.N_FEATURES: len(features),
        fm.N_SCORED: int(tables.scores["scored"].sum()),
        fm.VECTOR_SOURCES: ours.vectors.sources,
        fm.COMPARE: None if other is None else {**compare_block(other), **other.counts()},
        fm.STEP_SECONDS: {step: round(value, 3) for step, value in sorted(seconds.items())},
        fm.WALL_TIME_S: wall,
    }


def _write(config: FeaturesConfig, tables: Tables, metadata: dict) -> FeaturesResult:
    """Write the tables, then the metadata; remove comparison files that no longer apply."""
    folder = config.folder
    write_parquet(folder / fm.FEATURE_SCORES_FILE, tables.scores)
    write_parquet(folder / fm.SAE_FIT_FILE, tables.fits)
    write_parquet(folder / fm.PROBES_FILE, tables.probes)
    for name, table in ((fm.COMPARE_SCORES_FILE, tables.compare_scores), (fm.DIFFERENCES_FILE, tables.differences)):
        if table is not None:
            write_parquet(folder / name, table)
        elif (folder / name).is_file():
            (folder / name).unlink()  # a comparison of an earlier run that no longer applies
    write_json(folder / fm.FEATURES_METADATA_FILE, metadata)
    return FeaturesResult(folder, tables, metadata)
