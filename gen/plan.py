"""What one generate run will do, decided before any engine starts.

:func:`plan` selects the problem rows (:func:`select_rows`), resolves the model, tokenizer, stop
ids, context, device and dtype (:func:`resolve`), tokenizes the prompts (:func:`build_tasks`) and
sets aside those that leave no room to generate (:func:`split_overflow`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from artifacts.device import default_dtype, detect_device
from artifacts.errors import InputError
from artifacts.schema import generations as keys
from gen.config import GenerateConfig
from gen.context import context_length
from gen.device_policy import batch_invariant_support
from gen.engine import EngineConfig
from gen.model_source import ModelSource, resolve_model
from gen.stop_tokens import StopTokens, stop_tokens
from gen.stream import PromptTask
from gen.tokenize import prompt_token_ids
from problems.prompts import PromptStyle, render_prompt
from problems.split import read_problems


def select_rows(problems: pd.DataFrame, *, start: int | None, end: int | None, limit: int | None) -> pd.DataFrame:
    """Rows ``start..end`` (inclusive, 0-indexed positions), then at most ``limit`` of them."""
    n = len(problems)
    lo = start or 0
    hi = n - 1 if end is None else end
    if lo >= n:
        raise InputError(f"--start {lo}: the problems file has only {n} rows (0..{n - 1})")
    if hi < lo:
        raise InputError(f"--start {lo} --end {hi}: the range is empty (--end is inclusive)")
    return problems.iloc[lo : hi + 1].iloc[:limit]


def build_tasks(rows: pd.DataFrame, tokenizer: Any, style: PromptStyle | str) -> list[PromptTask]:
    """Render and tokenize every selected problem (:mod:`gen.tokenize`)."""
    style = PromptStyle(style)
    tasks = []
    for row in rows.itertuples(index=False):
        try:
            prompt = render_prompt(row.text, list(row.test_list), style, tokenizer)
        except ValueError as exc:  # chat style without a chat template
            raise InputError(f"--prompt-style {style.value}: {exc}") from exc
        tasks.append(PromptTask(int(row.task_id), prompt, tuple(prompt_token_ids(prompt, tokenizer, style))))
    return tasks


def split_overflow(tasks: list[PromptTask], max_model_len: int) -> tuple[list[PromptTask], list[dict[str, Any]]]:
    """Tasks that fit, and ``{task_id, reason}`` for prompts leaving no room to generate.

    vLLM rejects a prompt of ``max_model_len`` tokens or more, and one rejected request fails the batch.
    """
    fits = [t for t in tasks if len(t.token_ids) < max_model_len]
    excluded = [
        {"task_id": t.task_id, "reason": f"prompt has {len(t.token_ids)} tokens; the context holds {max_model_len} "
         "(raise --max-model-len if the model allows)"}
        for t in tasks if len(t.token_ids) >= max_model_len
    ]
    return fits, excluded


@dataclass(frozen=True)
class Resolved:
    """The settings as they resolve on this machine for this model (what the metadata records)."""

    source: ModelSource
    tokenizer: Any
    stops: StopTokens
    device: str
    batch_invariant_note: str | None
    engine: EngineConfig

    def identity(self) -> dict[str, Any]:
        """The metadata fields stored rows must share with this run (:func:`gen.stage.check_same_model`)."""
        return {
            keys.MODEL_PATH: self.source.path, keys.MODEL_REVISION: self.source.revision,
            keys.MODEL_HASH: self.source.content_hash, keys.DTYPE: self.engine.dtype,
            "max_model_len": self.engine.max_model_len, keys.STOP_TOKEN_IDS: list(self.stops.ids),
        }


def resolve(config: GenerateConfig) -> Resolved:
    """Find the model and tokenizer; decide stop ids, context, device, dtype and the engine's settings.

    The device is where the replicas run (:func:`gen.ray_engine.cluster_device` on Ray), so dtype and
    eager defaults follow its hardware; eager is the default on CPU only (:mod:`gen.device_policy`).
    """
    source = resolve_model(config.model, revision=config.revision)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.path, revision=source.revision)
    if config.uses_ray:
        from gen.ray_engine import cluster_device

        device = cluster_device()
    else:
        device = detect_device()
    invariant, note = batch_invariant_support(device) if config.deterministic else (False, None)
    stops = stop_tokens(source.path, tokenizer, policy=config.stop, revision=source.revision)
    engine = EngineConfig(
        model=source.path,
        revision=source.revision,
        dtype=config.dtype or default_dtype(device),  # the config checked --dtype
        max_model_len=context_length(source.path, revision=source.revision, max_model_len=config.max_model_len),
        max_new_tokens=config.max_new_tokens,
        stop_token_ids=stops.ids,
        ignore_eos=stops.ignore_eos,
        tensor_parallel_size=config.tensor_parallel_size,
        enforce_eager=device == "cpu" if config.enforce_eager is None else config.enforce_eager,
        enable_prefix_caching=not config.deterministic,
        batch_invariant=invariant,
        seed=config.seed,
    )
    return Resolved(source, tokenizer, stops, device, note, engine)


@dataclass(frozen=True)
class Plan:
    """The selected rows, the prompts that fit, those that do not, and the resolved settings."""

    rows: pd.DataFrame
    tasks: list[PromptTask]
    excluded: list[dict[str, Any]]
    resolved: Resolved


def plan(config: GenerateConfig) -> Plan:
    """Select, resolve, tokenize and split off the overflowing prompts."""
    rows = select_rows(read_problems(config.problems), start=config.start, end=config.end, limit=config.limit)
    resolved = resolve(config)
    tasks = build_tasks(rows, resolved.tokenizer, config.prompt_style)
    tasks, excluded = split_overflow(tasks, resolved.engine.max_model_len)
    return Plan(rows, tasks, excluded, resolved)
