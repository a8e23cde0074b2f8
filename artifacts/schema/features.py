"""Keys of ``features_metadata.json`` and the columns of the features stage's tables.

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
SAE_FIT_FILE = "sae_fit.parquet"  # SaeFitRow: each SAE's FVU and L0 on each run's vectors
PROBES_FILE = "probes.parquet"  # ProbeRow: cross-validated logistic probes per layer x site
DIFFERENCES_FILE = "feature_differences.parquet"  # DifferenceRow: --compare-activations, paired AUROC differences

# Values of the tables' label columns.
RUN_THIS = "this"  # SaeFitRow.run / ProbeRow.run: this run's vectors
RUN_COMPARE = "compare"  # ... the --compare-activations run's
POSITIONS_LAST_PROMPT = "last_prompt"  # the last prompt token of each task (the vectors features are scored on)
POSITIONS_ALL_TOKENS = "all_tokens"  # token vectors of the stored sequence arrays (position 0 left out)
INPUTS_RESIDUAL = "residual"  # ProbeRow.inputs: the raw residual vectors
INPUTS_LISTED = "listed_features"  # ... the layer's listed SAE features' activations
VERDICT_CARRIES_OVER = "carries over"
VERDICT_DOES_NOT = "does not carry over"
VERDICT_CANNOT_TELL = "cannot tell"
VERDICTS = (VERDICT_CARRIES_OVER, VERDICT_DOES_NOT, VERDICT_CANNOT_TELL)

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
N_PERMUTATIONS = "n_permutations"  # label permutations of each p-value
N_NULL_LATENTS = "n_null_latents"  # random latents per layer, the null of null_percentile
TOKEN_VECTORS = "token_vectors"  # token vectors sampled per layer x run for the all_tokens fit (0: every token)
RULES = "verdict_rules"  # {RULE_*}: the verdict's rule and its constants (features/verdict.py)
RULE_ALPHA = "alpha"  # q below this: significant
RULE_FVU_BOUND = "fvu_bound"  # without a reference run: the SAE fits when FVU <= this
RULE_FVU_MARGIN = "fvu_margin"  # with one: the SAE fits when FVU <= the reference run's FVU + this ...
RULE_FVU_CEILING = "fvu_ceiling"  # ... and never when FVU > this
RULE_MIN_CLASS = "min_class_tasks"  # fewer tasks in a class: cannot tell
RULE_REFERENCE = "reference"  # label of the run whose FVU is the reference (the comparison run), or null
STEP_SECONDS = "step_seconds"  # {step: seconds} of this run of the stage
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
    p_value: float  # one-sided label-permutation p-value of the AUROC (N_PERMUTATIONS, seeded)
    q_value: float  # Benjamini-Hochberg across every scored feature x site of the run
    null_percentile: float  # percentile (0-100) of the AUROC among N_NULL_LATENTS random latents' of the same SAE
    sae_fvu: float  # the layer's SAE on this run's last-prompt vectors at this site (SaeFitRow.fvu)
    verdict: str  # one of VERDICTS (features/verdict.py; the rules are in the metadata's RULES)
    verdict_reason: str  # the rule that decided it, with the numbers


SCORE_COLUMNS = tuple(f.name for f in fields(ScoreRow))


@dataclass(frozen=True)
class SaeFitRow:
    """One row of ``sae_fit.parquet``: a layer's SAE on one run's vectors at one site and set of positions.

    ``FVU = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` with the JumpReLU reconstruction
    ``x_hat = acts @ W_dec + b_dec``; L0: mean number of active latents per vector.
    """

    run: str  # RUN_THIS or RUN_COMPARE
    layer: int
    hook_point: str  # resid_pre or resid_post
    positions: str  # POSITIONS_LAST_PROMPT or POSITIONS_ALL_TOKENS
    n_vectors: int
    fvu: float
    l0: float


SAE_FIT_COLUMNS = tuple(f.name for f in fields(SaeFitRow))


@dataclass(frozen=True)
class ProbeRow:
    """One row of ``probes.parquet``: a cross-validated logistic probe for ``passed`` at one layer and site."""

    run: str  # RUN_THIS or RUN_COMPARE
    layer: int
    hook_point: str
    inputs: str  # INPUTS_RESIDUAL or INPUTS_LISTED
    n_tasks: int
    n_folds: int  # 0 when not computable (< 2 tasks in a class)
    auroc: float  # pooled out-of-fold AUROC
    auroc_ci_low: float  # stratified bootstrap over tasks, the folds' fits held fixed
    auroc_ci_high: float
    p_value: float  # per-fold exact permutation tests, Bonferroni over the folds (stats/probe.py)


PROBE_COLUMNS = tuple(f.name for f in fields(ProbeRow))


@dataclass(frozen=True)
class DifferenceRow:
    """One row of ``feature_differences.parquet``: a listed feature's AUROC here minus in the comparison run.

    On the tasks both runs have vectors for; the paired bootstrap resamples those tasks once for
    both runs (stats/bootstrap.py). NaN when either run has fewer than 2 tasks in a class.
    """

    group: str
    rank: int
    layer: int
    feature_idx: int
    hook_point: str
    n_shared_tasks: int
    auroc_this: float
    auroc_compare: float
    auroc_difference: float  # auroc_this - auroc_compare
    difference_ci_low: float  # 2.5th percentile of the paired bootstrap
    difference_ci_high: float


DIFFERENCE_COLUMNS = tuple(f.name for f in fields(DifferenceRow))
