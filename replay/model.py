"""Load the replay model: a TransformerLens ``TransformerBridge`` over the Hugging Face checkpoint.

The bridge wraps the Hugging Face modules themselves (no weight folding), so its residual
hooks see the same tensors Hugging Face computes. Gemma-2 needs eager attention: its
attention-logit soft-capping is only applied by the eager kernel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from artifacts.device import resolve_device, torch_dtype
from artifacts.errors import InputError
from artifacts.schema import generations as gen_keys

log = logging.getLogger(__name__)

# Model families whose Hugging Face attention is only exact with the eager kernel.
EAGER_ATTENTION_MODEL_TYPES = frozenset({"gemma2", "gemma3", "gemma3_text"})


@dataclass(frozen=True)
class ModelSpec:
    """What to load: name or folder, revision, dtype and a concrete device (``cpu``/``cuda``)."""

    name: str
    revision: str | None
    dtype: torch.dtype
    device: str

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


@dataclass(frozen=True)
class ModelShape:
    """Sizes read from the config alone, before any weights load."""

    n_layers: int
    d_model: int
    max_positions: int | None


def same_model(a: str, b: str) -> bool:
    """Whether two model references name the same model (local folders compared resolved)."""
    pa, pb = Path(a), Path(b)
    return pa.resolve() == pb.resolve() if pa.exists() and pb.exists() else a == b


def model_spec(generations_meta: dict[str, Any], *, model: str | None, dtype: str | None, device: str) -> ModelSpec:
    """The model the generations were made with, unless ``model`` / ``dtype`` override it.

    A different model is allowed (e.g. a local copy of the same checkpoint) but logged as a
    warning, since its activations then describe tokens another model chose.
    """
    generated_with = str(generations_meta[gen_keys.MODEL])
    # "model" is as the user gave it (maybe relative to another folder); generate also records
    # the resolved folder of a local model.
    local = generations_meta.get(gen_keys.MODEL_PATH)
    if local and Path(local).is_dir():
        generated_with = str(local)
    if model is None or same_model(model, generated_with):
        name, revision = (model or generated_with), generations_meta.get(gen_keys.MODEL_REVISION)
    else:
        log.warning("--model %s differs from the model the generations were made with (%s); "
                    "its activations describe tokens another model chose", model, generated_with)
        name, revision = model, None
    if dtype is None:
        if not generations_meta.get(gen_keys.DTYPE):
            raise InputError(f"generations metadata has no '{gen_keys.DTYPE}'; pass --dtype")
        dtype = str(generations_meta[gen_keys.DTYPE])
    return ModelSpec(name=name, revision=revision, dtype=torch_dtype(dtype), device=resolve_device(device))


def read_model_shape(spec: ModelSpec) -> ModelShape:
    """Layer count and width from the config, so bad layers fail before weights load."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(spec.name, revision=spec.revision)
    except (OSError, ValueError) as exc:
        raise InputError(f"model {spec.name}: cannot load its config ({exc}); pass --model with a local folder or hub name") from exc
    text = config.get_text_config()
    max_positions = getattr(text, "max_position_embeddings", None)
    return ModelShape(int(text.num_hidden_layers), int(text.hidden_size), int(max_positions) if max_positions else None)


def load_bridge(spec: ModelSpec) -> Any:
    """``TransformerBridge.boot_transformers`` in ``spec``'s dtype on ``spec``'s device, in eval mode.

    Raises:
        RuntimeError: a model that needs eager attention was loaded with another kernel.
    """
    from transformer_lens.model_bridge import TransformerBridge

    # boot_transformers loads eager attention unless the architecture adapter asks otherwise;
    # the check makes that guarantee explicit for Gemma-2.
    bridge = TransformerBridge.boot_transformers(spec.name, revision=spec.revision, dtype=spec.dtype, device=spec.device)
    bridge.eval()
    config = bridge.original_model.config
    attn = getattr(config, "_attn_implementation", None)
    if config.model_type in EAGER_ATTENTION_MODEL_TYPES and attn != "eager":
        raise RuntimeError(f"{spec.name}: loaded with attn_implementation={attn!r}; {config.model_type} needs 'eager'")
    return bridge
