"""Keys of ``features_metadata.json`` and the columns of ``feature_scores.parquet``.

Written by the features stage (``features/stage.py``); read by the report (``report/features.py``).
Hook sites (``resid_pre``, ``resid_post``) are the activations schema's
(``artifacts/schema/activations.py``: ``RESID_PRE``, ``RESID_POST``, ``HOOK_POINTS``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# Files, in DATA/phase7_3/features/ (the stage's --output-dir).
FEATURES_SUBDIR = "features"
FEATURE_SCORES_FILE = "feature_scores.parquet"  # this run's activations
COMPARE_SCORES_FILE = "compare_feature_scores.parquet"  # --compare-activations: the other run's
FEATURES_METADATA_FILE = "features_metadata.json"

# Keys of features_metadata.json.
CREATED = "creation_timestamp"
INPUTS = "inputs"  # {dataset, dataset_sha256, activations_dir, vectors_sha256, feature_list, feature_list_sha256}
MODEL = "model"  # the activations' model (activations_metadata.json), or null
HOOK_POINTS_KEY = "hook_points"  # the sites scored, primary first (activations schema HOOK_POINTS)
PRIMARY_HOOK_POINT = "primary_hook_point"
SAES = "saes"  # [{SAE_LAYER, SAE_ID, SAE_SHA256, SAE_FORMAT, SAE_STAND_IN, d_model, d_sae, n_columns,
#                 description; a file: path, size, mtime_ns; a stand-in: seed}]
SAE_LAYER = "layer"
SAE_ID = "sae_id"  # "repo/filename" (hub), "local:PATH" (--sae), "stand-in:seed_S/layer_L" (--demo-saes)
SAE_SHA256 = "sha256"  # of the file; of the parameters built (W_enc, b_enc, threshold, W_dec, b_dec) for a stand-in
SAE_FORMAT = "format"  # "gemmascope" (a params.npz file) or "stand-in" (built at run time)
SAE_STAND_IN = "stand_in"
STAND_IN_SAES = "stand_in_saes"  # true when any SAE used is a random stand-in (--demo-saes), not GemmaScope
SKIPPED_LAYERS = "skipped_layers"  # [{SKIPPED_LAYER, SKIPPED_REASON, SKIPPED_FEATURES}]: no SAE, not scored
SKIPPED_LAYER = "layer"
SKIPPED_REASON = "reason"
SKIPPED_FEATURES = "features"  # ["correct[1] #11225", ...]
N_TASKS = "n_tasks"  # dataset tasks with vectors (scored)
N_PASSED = "n_passed"
N_FAILED = "n_failed"
N_MISSING = "n_tasks_without_vectors"
N_FEATURES = "n_features"  # listed features
N_SCORED = "n_scored_rows"  # rows of feature_scores.parquet with scored = true
SEED = "seed"
N_BOOTSTRAP = "n_bootstrap"
MAX_FOLDS = "max_folds"
VECTOR_SOURCES = "vector_sources"  # {hook_point: where the vectors came from}
COMPARE = "compare"  # null, or {label, dataset, dataset_sha256, activations_dir, vector_sources,
#                       n_tasks, n_passed, n_failed, n_tasks_without_vectors}
COMPARE_LABEL = "label"
WALL_TIME_S = "wall_time_s"  # seconds of the run that computed the scores


@dataclass(frozen=True)
class ScoreRow:
    """One row of ``feature_scores.parquet``: one listed feature at one hook point.

    Statistics are NaN when not computable (feature not scored, or a class without tasks).
    AUROC and F1 treat ``positive_class`` as positive: ``passed`` for the "correct"
    features, ``failed`` for the "incorrect" ones, as their lists define them.
    """

    group: str  # "correct" or "incorrect"
    rank: int  # 0 = best of its group in the list
    layer: int
    feature_idx: int
    hook_point: str  # resid_pre or resid_post
    positive_class: str  # "passed" or "failed"
    scored: bool
    not_scored_reason: str | None
    vector_source: str | None  # where this layer's vectors came from
    sae_id: str | None
    n_tasks: int
    n_passed: int
    n_failed: int
    auroc: float
    auroc_ci_low: float  # seeded stratified bootstrap, 2.5th percentile
    auroc_ci_high: float  # 97.5th percentile
    fire_frac: float  # share of tasks with activation > 0
    fire_frac_passed: float
    fire_frac_failed: float
    mean_act_passed: float
    mean_act_failed: float
    f1_cv: float  # pooled out-of-fold F1, threshold fitted on the other folds
    f1_cv_folds: int  # 0 when not computable (< 2 tasks in a class)
    f1_threshold: float  # threshold maximizing F1 on all tasks (fires above it)
    f1_all_positive: float  # baseline: F1 of calling every task positive, 2 n_pos / (n_tasks + n_pos)


SCORE_COLUMNS = tuple(f.name for f in fields(ScoreRow))
