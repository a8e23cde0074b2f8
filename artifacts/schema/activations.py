"""Keys of ``activations_metadata.json``, the per-task activation files and the compact vectors file.

Written by replay; read by evaluate, features and report. The rest of the metadata
(provenance, counts, timings) is described in ``data/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# --- Hook sites ------------------------------------------------------------------------
# The residual stream entering block L (primary: the earlier phases' capture, where the
# listed features were selected) and leaving it (where GemmaScope's SAEs were trained).
RESID_PRE = "resid_pre"
RESID_POST = "resid_post"
HOOK_POINTS = (RESID_PRE, RESID_POST)


def hook_name(site: str, layer: int) -> str:
    """The TransformerLens hook name of ``site`` at ``layer``, e.g. ``blocks.16.hook_resid_pre``."""
    return f"blocks.{int(layer)}.hook_{site}"


# --- activations_metadata.json: keys other stages read ---------------------------------
MODEL = "model"  # str: the model the replay loaded
DTYPE = "dtype"  # str: replay dtype (float32, bfloat16, float16)
DEVICE = "device"  # str: cpu or cuda
HOOK_POINT = "hook_point"  # str: RESID_PRE (default) or RESID_POST: the site of arr_0
HOOK_POINT_EXPLANATION = "hook_point_explanation"  # str: one sentence, HOOK_POINT_EXPLANATIONS
HOOK_NAMES = "hook_names"  # list[str]: TransformerLens names of arr_0's hooks, one per layer
LAYERS = "layers"  # list[int]: layers with {task_id}_layer_{L} files, ascending
D_MODEL = "d_model"  # int
ACTIVATION_FORMAT = "activation_format"  # str: one of ACTIVATION_FORMATS
ACTIVATION_FORMATS = ("npz", "safetensors", "both")  # which per-task files exist (npz, safetensors or both)
N_TASKS = "n_tasks"  # int: tasks in the generations (= files per layer and format)
N_TOKENS = "n_tokens"  # int: tokens in the generations
WALL_TIME_S = "wall_time_s"  # float: forward passes and writes, summed over resumed runs
TOKENS_PER_S = "tokens_per_s"  # float | None
VERIFY = "verify"  # dict | None: the --verify block (keys VERIFY_* below)
FEATURE_VECTORS = "feature_vectors"  # dict: the compact file's block (keys FEATURE_VECTORS_* below)
VERSION_SUFFIX = "_version"  # e.g. transformer_lens_version: library versions end with this

# Keys of the VERIFY block.
VERIFY_N_TASKS = "n_tasks"
VERIFY_MAX_REL_ERROR = "max_rel_error"  # float32 last-prompt vectors at HOOK_POINT vs Hugging Face
VERIFY_FIDELITY = "fidelity"  # fraction of completion positions whose argmax is the generated token

# Keys of the FEATURE_VECTORS block.
FEATURE_VECTORS_FILE_KEY = "file"  # str: file name, FEATURE_VECTORS_FILE
FEATURE_VECTORS_LAYERS = "layers"  # list[int]: the file's layers
FEATURE_VECTORS_N_TASKS = "n_tasks"  # int

# One sentence per hook point, recorded beside HOOK_POINT (the dataset metadata copies it).
HOOK_POINT_EXPLANATIONS = {
    RESID_PRE: (
        "resid_pre: the residual stream entering decoder block L at each position (Hugging Face "
        "hidden_states[L], TransformerLens blocks.L.hook_resid_pre), which is what the earlier "
        "phases captured with a forward pre-hook on layer L and what the Phase 2.5/2.10 SAE "
        "features were selected on."
    ),
    RESID_POST: (
        "resid_post: the residual stream leaving decoder block L at each position (Hugging Face "
        "hidden_states[L+1], TransformerLens blocks.L.hook_resid_post), the site GemmaScope's "
        "layer-L residual SAEs were trained on, one block deeper than the earlier phases' capture."
    ),
}

# --- The compact feature-layer vectors file ----------------------------------------------
# One file per run beside task_activations/: the last-prompt-token vectors, at both
# residual sites, of every layer the SAE feature list names (the features stage reads it).
FEATURE_VECTORS_FILE = "feature_layer_vectors.npz"
FV_TASK_ID = "task_id"  # int64 (n_tasks,), ascending
FV_LAYERS = "layers"  # int64 (n_layers,), ascending
FV_RESID_PRE = "resid_pre"  # float32 (n_tasks, n_layers, d_model): input of block L
FV_RESID_POST = "resid_post"  # float32 (n_tasks, n_layers, d_model): output of block L
FV_KEYS = (FV_TASK_ID, FV_LAYERS, FV_RESID_PRE, FV_RESID_POST)


def verify_block(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``verify`` block of an activations metadata dict, or None when absent or empty."""
    value = (meta or {}).get(VERIFY)
    return dict(value) if isinstance(value, Mapping) and value else None


def hook_point_explanation(meta: Mapping[str, Any] | None) -> str | None:
    """The recorded sentence, else the one for the recorded hook point (older files), else None."""
    meta = meta or {}
    recorded = meta.get(HOOK_POINT_EXPLANATION)
    if isinstance(recorded, str) and recorded:
        return recorded
    return HOOK_POINT_EXPLANATIONS.get(str(meta.get(HOOK_POINT)))


# --- The per-task activation files: {task_id}_layer_{L}.npz / .safetensors ----------------
NPZ_ARR_0 = "arr_0"  # float32 (1, d_model): the last prompt token at HOOK_POINT (the earlier phases' key)
NPZ_LAST = {RESID_PRE: "resid_pre_last", RESID_POST: "resid_post_last"}  # float32 (1, d_model) per site
NPZ_SEQUENCE = "sequence"  # float16 (n_tokens, d_model): every position at HOOK_POINT
NPZ_TOKEN_IDS = "token_ids"  # int32 (n_tokens,): prompt + completion ids replayed
NPZ_N_PROMPT_TOKENS = "n_prompt_tokens"  # int 0-d
NPZ_HOOK_NAME = "hook_name"  # unicode 0-d: hook_name(HOOK_POINT, L)
NPZ_KEYS = (NPZ_ARR_0, *NPZ_LAST.values(), NPZ_SEQUENCE, NPZ_TOKEN_IDS, NPZ_N_PROMPT_TOKENS, NPZ_HOOK_NAME)
SAFETENSORS_KEY = "activation"  # float32 (1, d_model), the one tensor of the .safetensors form
# The compact file's vector key of each site.
FV_SITE_KEYS = {RESID_PRE: FV_RESID_PRE, RESID_POST: FV_RESID_POST}
