"""Hugging Face ``generate``, one problem at a time: the earlier approach, kept as the baseline
of the benchmark and the reference of the tests (vLLM's greedy tokens must equal these).
Eager attention: Gemma-2's attention logit soft-capping is only exact there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence


def hf_greedy(
    model_path: str,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int | Sequence[int],
    stop_token_ids: Sequence[int],
    dtype: str = "float32",
    timings: list[float] | None = None,
    progress: bool = False,
) -> list[list[int]]:
    """Greedy completion ids for each prompt (the stop id included when generation stopped on it).

    Args:
        model_path: checkpoint folder or hub id.
        prompts: token ids, used as given (no re-tokenization).
        max_new_tokens: generation budget, one for all prompts or one per prompt.
        stop_token_ids: end-of-turn ids.
        timings: when given, each prompt's generate seconds are appended to it.
    """
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype), attn_implementation="eager")
    model.eval()
    stops = list(stop_token_ids)
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(budgets) != len(prompts):
        raise ValueError(f"{len(budgets)} budgets for {len(prompts)} prompts")
    outputs = []
    with torch.no_grad():
        for ids, budget in tqdm(list(zip(prompts, budgets)), desc="hf generate", unit="problem", disable=not progress):
            input_ids = torch.tensor([[int(i) for i in ids]])
            start = time.perf_counter()
            # The sampling knobs of generation_config.json are left out of a greedy run.
            out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                                 max_new_tokens=budget, eos_token_id=stops, pad_token_id=stops[0],
                                 temperature=None, top_p=None, top_k=None)
            if timings is not None:
                timings.append(time.perf_counter() - start)
            outputs.append(out[0, input_ids.shape[1]:].tolist())
    return outputs
