"""Upstream metadata keys that evaluate and report read, until their owners' modules hold them.

``artifacts/meta/activations.py`` (owner: replay) and ``artifacts/meta/generations.py``
(owner: generate) name these keys, with these same attribute names, on their branches. Once
they are merged, delete this file and replace
``from artifacts.meta.pending import activations, generations`` by
``from artifacts.meta import activations, generations``.
"""

from __future__ import annotations


class activations:  # noqa: N801 - stands in for the module of that name
    """Keys of ``activations_metadata.json``."""

    MODEL = "model"
    HOOK_POINT = "hook_point"
    HOOK_POINT_EXPLANATION = "hook_point_explanation"
    LAYERS = "layers"
    N_TASKS = "n_tasks"
    N_TOKENS = "n_tokens"
    WALL_TIME_S = "wall_time_s"
    TOKENS_PER_S = "tokens_per_s"
    VERIFY = "verify"
    VERIFY_FIDELITY = "fidelity"
    VERSION_SUFFIX = "_version"


class generations:  # noqa: N801 - stands in for the module of that name
    """Keys of ``generations_metadata.json``."""

    MODEL = "model"
    PROMPT_STYLE = "prompt_style"
    COMPLETE = "complete"
    N_TASKS = "n_tasks"
    EXCLUDED_TASK_IDS = "excluded_task_ids"
    EXCLUDED = "excluded"
    N_COMPLETION_TOKENS = "n_completion_tokens"
    TOKENS_PER_S = "tokens_per_s"
    WALL_TIME_S = "wall_time_s"
