"""Hand-made generations of the tiny Gemma-2 (MBPP prompts tokenized by its tokenizer, completed
by Hugging Face greedy decoding, written in the generate stage's file format), and the replay
stage's settings for them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artifacts.files import write_json, write_parquet
from artifacts.layout import GENERATIONS_FILE, GENERATIONS_METADATA_FILE
from replay.config import ReplayConfig
from problems.prompts import build_prompt

N_TASKS = 6
MAX_NEW_TOKENS = 12


def make_generations(model_path: Path, mbpp_path: Path, dest: Path, *, n_tasks: int = N_TASKS) -> Path:
    """Write ``generations.parquet`` + metadata for the first ``n_tasks`` MBPP problems to ``dest``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="eager").eval()
    problems = [json.loads(line) for line in mbpp_path.read_text().splitlines()[:n_tasks]]
    rows = []
    for i, problem in enumerate(problems):
        prompt = build_prompt(problem["text"], problem["test_list"])
        # Varied lengths, one past the tiny model's 256-token sliding window, so batches pad.
        prompt = prompt * (1 + i % 3)
        prompt_ids = tokenizer(prompt)["input_ids"]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([prompt_ids]), do_sample=False, max_new_tokens=MAX_NEW_TOKENS - i, pad_token_id=0
            )
        completion_ids = out[0, len(prompt_ids) :].tolist()
        rows.append(
            {
                "task_id": int(problem["task_id"]),
                "prompt": prompt,
                "prompt_token_ids": np.asarray(prompt_ids, dtype=np.int32),
                "completion_token_ids": np.asarray(completion_ids, dtype=np.int32),
                "completion": tokenizer.decode(completion_ids, skip_special_tokens=True),
                "finish_reason": "length",
                "n_prompt_tokens": len(prompt_ids),
                "n_completion_tokens": len(completion_ids),
                "generation_time": 0.0,
            }
        )
    dest.mkdir(parents=True, exist_ok=True)
    write_parquet(dest / GENERATIONS_FILE, pd.DataFrame(rows))
    write_json(
        dest / GENERATIONS_METADATA_FILE,
        {"model": str(model_path), "model_revision": None, "dtype": "float32", "device": "cpu", "n_tasks": len(rows)},
    )
    return dest / GENERATIONS_FILE


@pytest.fixture(scope="session")
def tiny_generations_dir(tiny_gemma2: Path, mbpp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only folder with the tiny model's generations (copy it before writing beside it)."""
    dest = tmp_path_factory.mktemp("tiny-generations")
    make_generations(tiny_gemma2, mbpp_path, dest)
    return dest


@pytest.fixture
def stage_dir(tiny_generations_dir: Path, tmp_path: Path) -> Path:
    """A fresh stage folder holding a copy of the tiny generations."""
    return copy_stage(tiny_generations_dir, tmp_path / "phase7_3")


def replay_config(stage: Path, *layers: int, listed: tuple[int, ...] = (), **settings) -> ReplayConfig:
    """Replay settings for the generations in ``stage``, on the CPU.

    ``layers``: the extraction layers (``--layers``); ``listed``: the layers a feature list
    names (written to ``stage/../analysis``; none: ``--layers`` alone, no feature list found,
    whatever ``$PVA_PHASE2_10_DIR`` says).
    """
    none = stage.parent / "no-analysis"
    analysis = none
    if listed:
        analysis = stage.parent / "analysis"
        entries = [{"feature_idx": i, "layer": layer} for i, layer in enumerate(listed)]
        write_json(analysis / "top_20_features.json", {"correct": entries, "incorrect": entries[::-1]})
    defaults = {"generations_path": stage / GENERATIONS_FILE, "output_dir": stage, "data_dir": stage.parent,
                "device": "cpu", "phase2_10_dir": analysis, "phase2_5_dir": none}
    if layers:
        defaults["layers"] = ",".join(str(layer) for layer in layers)
    return ReplayConfig(**{**defaults, **settings})


def replay(stage: Path, *layers: int, listed: tuple[int, ...] = (), **settings):
    """Run the replay stage (see :func:`replay_config`); returns its result."""
    from replay.stage import run

    return run(replay_config(stage, *layers, listed=listed, **settings), show_progress=False)


def copy_stage(tiny_generations_dir: Path, dest: Path) -> Path:
    """A fresh stage folder at ``dest`` holding a copy of the tiny generations."""
    shutil.copytree(tiny_generations_dir, dest)
    return dest


