"""The generate stage's parquet columns and metadata keys that another stage reads (data/README.md: all).

Written by generate (``gen/store.py``, ``gen/metadata.py``); read by replay (token ids, model,
dtype), evaluate (completions, completeness, exclusions, prompt style) and report (costs).
"""

from __future__ import annotations

# generations.parquet columns (gen/store.py holds their arrow types), sorted by task_id.
COL_TASK_ID = "task_id"  # int64: MBPP task id
COL_PROMPT = "prompt"  # string: the rendered prompt
COL_PROMPT_TOKEN_IDS = "prompt_token_ids"  # list<int32>: exactly what the engine was fed, one BOS
COL_COMPLETION_TOKEN_IDS = "completion_token_ids"  # list<int32>: generated ids, the stop id included
COL_COMPLETION = "completion"  # string: completion ids decoded, special tokens skipped
COL_FINISH_REASON = "finish_reason"  # string: FINISH_STOP or FINISH_LENGTH
COL_N_PROMPT_TOKENS = "n_prompt_tokens"  # int64
COL_N_COMPLETION_TOKENS = "n_completion_tokens"  # int64
COL_GENERATION_TIME = "generation_time"  # float64: seconds from submission to the step that finished it
COLUMNS = (COL_TASK_ID, COL_PROMPT, COL_PROMPT_TOKEN_IDS, COL_COMPLETION_TOKEN_IDS, COL_COMPLETION,
           COL_FINISH_REASON, COL_N_PROMPT_TOKENS, COL_N_COMPLETION_TOKENS, COL_GENERATION_TIME)
FINISH_STOP = "stop"  # a stop id
FINISH_LENGTH = "length"  # max_new_tokens or the context ran out

# generations_metadata.json keys.
# Which model made the tokens (replay reloads exactly it).
MODEL = "model"  # --model as given: hub id or folder
MODEL_PATH = "model_path"  # resolved absolute folder, or the hub id
MODEL_REVISION = "model_revision"  # hub commit hash when known, else null
MODEL_HASH = "model_hash"  # sha256 over a local folder's files, else null
DTYPE = "dtype"  # float32 | bfloat16 | float16
VLLM_VERSION = "vllm_version"
DEVICE = "device"
BACKEND = "backend"  # embedded | ray (--backend; --data-parallel-size > 1 runs on ray)
RAY_VERSION = "ray_version"  # runs on ray only
RAY_CLUSTER_RESOURCES = "ray_cluster_resources"  # runs on ray only: the cluster's CPU, GPU, memory, ...

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

# One record per run (engine, device, counts and times of that run); the totals above sum them.
RUNS = "runs"
