"""Best-layer discovery from the SAE analysis files."""

from __future__ import annotations

import json

import pytest

from artifacts.errors import InputError
from artifacts.feature_list import check_layers, find_best_layers, parse_layers, read_best_layers, resolve_layers


def test_phase2_10_layers(shared_data):
    best = read_best_layers(shared_data / "pva_reference" / "phase2_10" / "top_20_features.json")
    assert best.extraction_layers == (16, 19)
    assert (best.correct_layer, best.correct_feature_idx) == (16, 14439)
    assert (best.incorrect_layer, best.incorrect_feature_idx) == (19, 5441)


def test_phase2_5_layers(shared_data):
    best = read_best_layers(shared_data / "pva_reference" / "phase2_5" / "top_20_features.json")
    assert best.extraction_layers == (16, 25)
    assert (best.correct_feature_idx, best.incorrect_feature_idx) == (11225, 2853)


def test_phase2_10_preferred_then_phase2_5(shared_data, tmp_path):
    ref = shared_data / "pva_reference"
    assert find_best_layers([ref / "phase2_10", ref / "phase2_5"]).extraction_layers == (16, 19)
    assert find_best_layers([tmp_path / "missing", ref / "phase2_5"]).extraction_layers == (16, 25)


def test_renamed_latents_file(tmp_path):
    (tmp_path / "top_20_latents.json").write_text(
        json.dumps({"correct": [{"latent_idx": 7, "layer": 3}], "incorrect": [{"latent_idx": 9, "layer": 3}]})
    )
    best = find_best_layers([tmp_path])
    assert best.extraction_layers == (3,)
    assert best.to_metadata()["best_layers"] == {
        "correct": 3, "incorrect": 3, "correct_feature_idx": 7, "incorrect_feature_idx": 9,
    }


def test_layers_override(shared_data):
    best = resolve_layers([shared_data / "pva_reference" / "phase2_10"], "19, 2,19")
    assert best.extraction_layers == (2, 19)
    assert best.correct_feature_idx == 14439
    assert resolve_layers([], "5").extraction_layers == (5,)


@pytest.mark.parametrize("spec", ["a,b", "", "-1"])
def test_bad_layer_spec(spec):
    with pytest.raises(InputError, match="--layers"):
        parse_layers(spec)


def test_no_analysis_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="top_20_features.json"):
        find_best_layers([tmp_path])


def test_malformed_analysis_files(tmp_path):
    bad = tmp_path / "top_20_features.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_best_layers(bad)
    bad.write_text(json.dumps({"correct": [], "incorrect": [{"feature_idx": 1, "layer": 2}]}))
    with pytest.raises(InputError, match="correct"):
        read_best_layers(bad)
    bad.write_text(json.dumps({"correct": [{"feature_idx": 1}], "incorrect": [{"feature_idx": 1, "layer": 2}]}))
    with pytest.raises(InputError, match="layer"):
        read_best_layers(bad)


def test_check_layers_against_model():
    check_layers([0, 25], 26, "gemma")
    with pytest.raises(InputError, match=r"outside model tiny, which has 4 layers"):
        check_layers([1, 16], 4, "tiny")
