"""End-of-turn ids come from the model's files, with fallbacks in a fixed order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from artifacts.errors import InputError
from gen.stop_tokens import StopPolicy, StopTokens, end_of_turn_ids, stop_tokens


def test_reads_every_id_of_the_generation_config(tiny_gemma2: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_gemma2)
    stops = end_of_turn_ids(str(tiny_gemma2), tok)
    expected = [tok.convert_tokens_to_ids("<eos>"), tok.convert_tokens_to_ids("<end_of_turn>")]
    assert list(stops.ids) == expected and stops.source == "generation_config"
    assert len(stops.ids) > 1  # more than the tokenizer's single eos_token


def test_generation_config_wins_over_config(tiny_gemma2: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_gemma2, model)
    gen = json.loads((model / "generation_config.json").read_text())
    gen["eos_token_id"] = [7]
    (model / "generation_config.json").write_text(json.dumps(gen))
    assert end_of_turn_ids(str(model)).ids == (7,)


def test_falls_back_to_config_then_tokenizer(tiny_gemma2: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_gemma2, model)
    (model / "generation_config.json").unlink()
    tok = AutoTokenizer.from_pretrained(model)
    stops = end_of_turn_ids(str(model), tok)
    assert stops.source == "config" and len(stops.ids) == 2
    config = json.loads((model / "config.json").read_text())
    config["eos_token_id"] = None
    (model / "config.json").write_text(json.dumps(config))
    stops = end_of_turn_ids(str(model), tok)
    assert stops == type(stops)((tok.eos_token_id,), "tokenizer")
    with pytest.raises(InputError, match="no eos_token_id"):
        end_of_turn_ids(str(model), None)


def test_demo_model_stops_on_im_end(demo_model: Path) -> None:
    tok = AutoTokenizer.from_pretrained(demo_model)
    assert end_of_turn_ids(str(demo_model), tok).ids == (tok.convert_tokens_to_ids("<|im_end|>"),)


def test_eos_only_is_the_tokenizer_eos_with_ignore_eos(tiny_gemma2: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_gemma2)
    default = stop_tokens(str(tiny_gemma2), tok)
    assert default == end_of_turn_ids(str(tiny_gemma2), tok) and default.ignore_eos is False
    eos_only = stop_tokens(str(tiny_gemma2), tok, policy="eos-only")
    assert eos_only == StopTokens((tok.eos_token_id,), "tokenizer", ignore_eos=True)

    class NoEos:
        eos_token_id = None

    with pytest.raises(InputError, match="--stop eos-only: the tokenizer of m names no eos_token"):
        stop_tokens("m", NoEos(), policy=StopPolicy.EOS_ONLY)


def test_vllm_keeps_eos_only_and_merges_the_generation_config_otherwise() -> None:
    """vLLM 0.32 adds the generation config's eos ids to stop_token_ids unless ignore_eos is set
    (``SamplingParams.update_from_generation_config``, called for every request): eos-only needs it."""
    from gen.engine import EngineConfig
    from gen.vllm_engine import sampling_params

    base = EngineConfig(model="m", revision=None, dtype="float32", max_model_len=64, max_new_tokens=8, stop_token_ids=(1,))
    generation_config = {"eos_token_id": [1, 107]}

    merged = sampling_params(base)
    merged.update_from_generation_config(generation_config, 1)
    assert set(merged.stop_token_ids) == {1, 107}  # without ignore_eos, <end_of_turn> would stop it again

    eos_only = sampling_params(EngineConfig(**{**base.__dict__, "ignore_eos": True}))
    eos_only.update_from_generation_config(generation_config, 1)
    assert eos_only.stop_token_ids == [1] and eos_only.ignore_eos
    from vllm.sampling_params import RequestOutputKind

    assert eos_only.output_kind == RequestOutputKind.FINAL_ONLY and eos_only.temperature == 0.0
