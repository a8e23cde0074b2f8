"""The evaluated dataset's file names, columns and ``metadata.json`` keys (meanings: ``data/README.md``).

Written by evaluate (``evaluate/dataset.py``); read by report and by the downstream analyses
(steering 7.6, AUROC 7.12, comparison 7.9), whose names these are.
"""

from __future__ import annotations

from artifacts.layout import DATASET_FILE

# Model types (``evaluate --model-type``) and the dataset file each is written to. Written
# with the earlier tool's spellings; readers call normalize_model_type, which also accepts
# the spelling this tool wrote before (MODEL_TYPE_INSTRUCT_ALIAS).
MODEL_TYPE_INSTRUCT = "instruction-tuned"
MODEL_TYPE_BASE = "base"
MODEL_TYPE_INSTRUCT_ALIAS = "instruction_tuned"
MODEL_TYPES = (MODEL_TYPE_INSTRUCT, MODEL_TYPE_BASE)
MODEL_TYPE_CHOICES = (*MODEL_TYPES, MODEL_TYPE_INSTRUCT_ALIAS)  # what --model-type accepts
DATASET_FILES = {
    MODEL_TYPE_INSTRUCT: DATASET_FILE,  # dataset_instruct_temp_0_0.parquet, the pipeline's default
    MODEL_TYPE_BASE: "dataset_base_temp_0_0.parquet",
}


def normalize_model_type(value: str) -> str:
    """``instruction-tuned`` or ``base`` for any accepted spelling (``instruction_tuned`` too).

    Raises:
        ValueError: not a model type.
    """
    canonical = MODEL_TYPE_INSTRUCT if value == MODEL_TYPE_INSTRUCT_ALIAS else value
    if canonical not in MODEL_TYPES:
        raise ValueError(f"model type {value!r}: expected one of {', '.join(MODEL_TYPE_CHOICES)}")
    return canonical


def dataset_file_name(model_type: str) -> str:
    """``dataset_instruct_temp_0_0.parquet`` or ``dataset_base_temp_0_0.parquet``."""
    return DATASET_FILES[normalize_model_type(model_type)]


# Verdicts (``evaluate --verdict``): the same strings as evaluate.verdict.Verdict.
VERDICT_ROBUST = "robust"
VERDICT_LEGACY = "legacy"

# Columns. The contract columns, in order, come first in the file.
TASK_ID = "task_id"
TEMPERATURE = "temperature"
PROMPT = "prompt"
GENERATED_CODE = "generated_code"
TEST_PASSED = "test_passed"  # the chosen verdict (metadata VERDICT)
ERROR_MESSAGE = "error_message"  # of the chosen verdict
GENERATION_TIME = "generation_time"
CYCLOMATIC_COMPLEXITY = "cyclomatic_complexity"
TEST_LIST = "test_list"
# Extras.
COMPLETION = "completion"
ERROR_TYPE = "error_type"  # of the chosen verdict
N_TESTS_PASSED = "n_tests_passed"  # of the chosen verdict
N_TESTS = "n_tests"
N_TESTS_TRUSTED = "n_tests_trusted"  # tests decided in the trusted parent (robust verdict)
EXTRACTION_METHOD = "extraction_method"
ROBUST_TEST_PASSED = "robust_test_passed"
ROBUST_ERROR_MESSAGE = "robust_error_message"
LEGACY_TEST_PASSED = "legacy_test_passed"
LEGACY_ERROR_MESSAGE = "legacy_error_message"
BASELINE_PASSED = "baseline_passed"  # = test_passed, the name later steering/comparison code reads
# The column holding each verdict's pass/fail.
VERDICT_COLUMNS = {VERDICT_ROBUST: ROBUST_TEST_PASSED, VERDICT_LEGACY: LEGACY_TEST_PASSED}

# metadata.json keys.
CREATION_TIMESTAMP = "creation_timestamp"
MODEL_NAME = "model_name"
MODEL_TYPE = "model_type"
# The layers block, copied from activations_metadata.json (replay writes it under the same keys).
BEST_LAYERS = "best_layers"  # {BEST_LAYERS_FIELDS}: all null when unknown
BEST_LAYERS_FIELDS = ("correct", "incorrect", "correct_feature_idx", "incorrect_feature_idx")
EXTRACTION_LAYERS = "extraction_layers"  # null when unknown
BEST_LAYERS_SOURCE = "best_layers_source"  # the feature-list file (or "--layers ..."), null when unknown
LAYER_KEYS = (BEST_LAYERS, EXTRACTION_LAYERS, BEST_LAYERS_SOURCE)
META_TEMPERATURE = "temperature"
VALIDATION_TASK_IDS = "validation_task_ids"  # the attempted tasks (included + excluded), ascending
N_TASKS_ATTEMPTED = "n_tasks_attempted"
N_TASKS_INCLUDED = "n_tasks_included"
N_TASKS_EXCLUDED = "n_tasks_excluded"
EXCLUSION_RATE_PERCENT = "exclusion_rate_percent"
EXCLUDED_TASK_IDS = "excluded_task_ids"
EXCLUDED = "excluded"
N_TOTAL_SAMPLES = "n_total_samples"
STATS = "stats"  # of the chosen verdict: keys below
STATS_N_CORRECT = "n_correct"
STATS_N_INCORRECT = "n_incorrect"
STATS_PASS_RATE = "pass_rate"
STATS_AVG_GENERATION_TIME = "avg_generation_time"
STATS_ERROR_TYPES = "error_types"
VERDICT = "verdict"  # which verdict fills test_passed
VERDICTS = "verdicts"  # {robust: {n_correct, n_incorrect, pass_rate}, legacy: {...}}
META_N_TESTS = "n_tests"  # tests over all rows
META_N_TESTS_TRUSTED = "n_tests_trusted"  # of them, decided in the trusted parent
COMPLETION_COLUMN = "completion_column"
HOOK_POINT = "hook_point"
HOOK_POINT_EXPLANATION = "hook_point_explanation"  # copied from activations_metadata.json
PROMPT_STYLE = "prompt_style"
FIDELITY = "fidelity"  # the replay's verify.fidelity
REPLAY_VERIFY = "replay_verify"  # the replay's whole verify block
LIBRARY_VERSIONS = "library_versions"
SANDBOX = "sandbox"
EVALUATION_WALL_TIME_S = "evaluation_wall_time_s"
GENERATIONS_FILE = "generations_file"
GENERATIONS_SHA256 = "generations_sha256"
PROBLEMS_FILE = "problems_file"
PROBLEMS_SHA256 = "problems_sha256"
GENERATIONS_METADATA = "generations_metadata"
ACTIVATIONS_METADATA = "activations_metadata"

# phase_output.json: the manifest the newer research code (common/phase_discovery.py) finds a
# phase's outputs through. OUTPUTS maps names to file names in the same folder and must hold
# OUTPUT_PRIMARY; DEPENDENCIES maps phase ids to the folders this phase read.
PHASE_OUTPUT_FILE = "phase_output.json"
PHASE = "phase"
PHASE_ID = "7.3"
CREATED_AT = "created_at"
CONFIG = "config"
CONFIG_MODEL_NAME = "model_name"
CONFIG_DATASET_NAME = "dataset_name"
DATASET_NAME = "mbpp"
OUTPUTS = "outputs"
OUTPUT_PRIMARY = "primary"  # the dataset parquet
OUTPUT_METADATA = "metadata"  # metadata.json
OUTPUT_ACTIVATIONS = "activations"  # the activations folder, when replay wrote one here
OUTPUT_GENERATIONS = "generations"  # generations.parquet, when it is in this folder
DEPENDENCIES = "dependencies"
DEPENDENCY_PROBLEMS = "0.1"  # the problems folder
DEPENDENCY_FEATURE_LIST = "2.10"  # the feature-list folder (Phase 2.10's; "2.5" when it came from there)
DEPENDENCY_FEATURE_LIST_FALLBACK = "2.5"
