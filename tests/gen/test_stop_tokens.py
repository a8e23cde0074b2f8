"""End-of-turn ids come from the model's files, with fallbacks in a fixed order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from artifacts.errors import InputError
from gen.stop_tokens import end_of_turn_ids


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
