"""Keys of ``generations_metadata.json`` that cross a stage boundary.

Written by generate (``gen/generate.py``); read by replay (which model and dtype made the
tokens), evaluate (completeness, exclusions, prompt style, library versions) and report
(stage costs). data/README.md describes every key of the file; the ones below are those
another stage reads, so they are named here once.
"""

from __future__ import annotations

# Which model made the tokens (replay reloads exactly it).
MODEL = "model"  # --model as given: hub id or folder
MODEL_PATH = "model_path"  # resolved absolute folder, or the hub id
MODEL_REVISION = "model_revision"  # hub commit hash when known, else null
MODEL_HASH = "model_hash"  # sha256 over a local folder's files, else null
DTYPE = "dtype"  # float32 | bfloat16 | float16
VLLM_VERSION = "vllm_version"
DEVICE = "device"

# How the prompts were made and where generation stopped.
PROMPT_STYLE = "prompt_style"  # raw | chat | raw-double-assert
MAX_NEW_TOKENS = "max_new_tokens"
STOP = "stop"  # end-of-turn | eos-only (--stop)
IGNORE_EOS = "ignore_eos"  # true under eos-only (vLLM's SamplingParams.ignore_eos)
STOP_TOKEN_IDS = "stop_token_ids"

# Which tasks are in the table.
COMPLETE = "complete"  # every selected task stored or excluded
N_TASKS = "n_tasks"  # rows stored
EXCLUDED_TASK_IDS = "excluded_task_ids"  # prompts that do not fit the context
EXCLUDED = "excluded"  # [{task_id, reason}]

# What it cost.
N_COMPLETION_TOKENS = "n_completion_tokens"
GENERATION_TIME_S = "generation_time_s"  # engine seconds (first submission to last finish), summed over runs
TOKENS_PER_S = "tokens_per_s"  # n_completion_tokens / generation_time_s
WALL_TIME_S = "wall_time_s"  # every run's wall time, engine start included

# The identity of the stored rows, and one record per run.
SETTINGS = "settings"
RUNS = "runs"
