"""The residual-stream sites a replay can read, and where each sits in Hugging Face's outputs."""

from __future__ import annotations

from enum import Enum

from artifacts.schema import activations as schema


class HookSite(str, Enum):
    """Which residual stream of block ``L`` is stored (names from :mod:`artifacts.schema.activations`).

    ``resid_pre`` is the input of block ``L`` (Hugging Face ``hidden_states[L]``): what the
    earlier phases captured with a forward pre-hook on decoder layer ``L``, and what the
    Phase 2.5/2.10 features were selected on; the default. ``resid_post`` is its output
    (``hidden_states[L + 1]``), the site GemmaScope's layer-``L`` residual SAEs were trained on.
    """

    RESID_PRE = schema.RESID_PRE
    RESID_POST = schema.RESID_POST

    def hook_name(self, layer: int) -> str:
        """The TransformerLens hook name, e.g. ``blocks.16.hook_resid_pre``."""
        return schema.hook_name(self.value, layer)

    @property
    def explanation(self) -> str:
        """One sentence saying what this site holds (recorded in the metadata)."""
        return schema.HOOK_POINT_EXPLANATIONS[self.value]

    @property
    def npz_last_key(self) -> str:
        """The per-task ``.npz`` key of this site's last-prompt-token vector (``resid_pre_last``)."""
        return schema.NPZ_LAST[self.value]

    def hidden_state_index(self, layer: int) -> int:
        """Index into Hugging Face ``output_hidden_states`` holding the same tensor.

        ``hidden_states[0]`` is the embedding output and ``hidden_states[L + 1]`` the output
        of block ``L``, except that the last entry has the final norm applied (see
        :func:`replay.verify.reference_residuals`, which reads the last block's output
        before that norm).
        """
        return layer + 1 if self is HookSite.RESID_POST else layer


DEFAULT_HOOK_SITE = HookSite.RESID_PRE
