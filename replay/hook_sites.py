"""The residual-stream sites a replay can read, and where each sits in Hugging Face's outputs."""

from __future__ import annotations

from enum import Enum


class HookSite(str, Enum):
    """Which residual stream of block ``L`` is stored.

    ``resid_post`` is the output of block ``L`` (the site GemmaScope residual SAEs of layer
    ``L`` were trained on); ``resid_pre`` is its input (what the earlier tool hooked).
    """

    RESID_POST = "resid_post"
    RESID_PRE = "resid_pre"

    def hook_name(self, layer: int) -> str:
        """The TransformerLens hook name, e.g. ``blocks.16.hook_resid_post``."""
        return f"blocks.{layer}.hook_{self.value}"

    def hidden_state_index(self, layer: int) -> int:
        """Index into Hugging Face ``output_hidden_states`` holding the same tensor.

        ``hidden_states[0]`` is the embedding output and ``hidden_states[L + 1]`` the output
        of block ``L``, except that the last entry has the final norm applied (see
        :func:`replay.verify.reference_activations`, which reads the last block's output
        before that norm).
        """
        return layer + 1 if self is HookSite.RESID_POST else layer


DEFAULT_HOOK_SITE = HookSite.RESID_POST
