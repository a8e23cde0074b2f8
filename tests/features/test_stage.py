"""The features stage end to end on real-format files: schema, report section, completion record,
comparison run, stand-in SAEs, and its one-line errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from artifacts.errors import InputError
from artifacts.feature_list import read_feature_list
from artifacts.records import is_current, read_record
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from features.config import FeaturesConfig
from features.stage import run
from report.config import FEATURES_PLOT, ReportConfig
from report.stage import run as run_report
from tests.features.synthetic import D_SAE, direction, feature_list, gemmascope_sae, write_run
from tests.report.test_stage import assert_png

D_MODEL = 32
FEATURES = feature_list([(16, 14439), (16, 11225), (17, 9162)], [(19, 5441), (17, 13444), (20, 9996)])


def offline(**_):
    raise ConnectionError("hub unreachable in tests")


@pytest.fixture
def data(tmp_path):
    return write_run(tmp_path / "phase7_3", features=FEATURES, n_tasks=200, n_passed=60, d_model=D_MODEL)


@pytest.fixture
def saes(tmp_path):
    # Layer 16 plants correct[0] along the direction separating passed tasks; layer 20 has no SAE.
    return {
        16: gemmascope_sae(tmp_path / "sae16.npz", d_model=D_MODEL, planted={14439: direction(16, D_MODEL)}, seed=16),
        17: gemmascope_sae(tmp_path / "sae17.npz", d_model=D_MODEL, seed=17),
        19: gemmascope_sae(tmp_path / "sae19.npz", d_model=D_MODEL, seed=19),
    }


def config(data, saes, **kwargs) -> FeaturesConfig:
    args = dict(data_dir=data.phase_dir.parent, dataset_path=data.dataset_path, activations_dir=data.activations_dir,
                output_dir=data.phase_dir / fm.FEATURES_SUBDIR, phase2_10_dir=data.feature_list.parent,
                sae_options=tuple(f"{layer}={path}" for layer, path in saes.items()))
    return FeaturesConfig(**(args | kwargs))


def score(data, saes, **kwargs):
    return run(config(data, saes, **kwargs), download=offline)


def report(data):
    return run_report(ReportConfig(data_dir=data.phase_dir.parent, dataset_path=data.dataset_path,
                                   output_dir=data.phase_dir / "report"))


def test_files_match_their_schema(data, saes):
    result = score(data, saes)
    scores = pd.read_parquet(result.scores_path)
    assert tuple(scores.columns) == fm.SCORE_COLUMNS
    assert len(scores) == 6 * 2  # every listed feature x both hook points, scored or not
    assert list(scores["hook_point"].unique()) == list(HOOK_POINTS)
    assert scores["scored"].dtype == bool and scores["layer"].dtype == np.int64
    assert scores[["auroc", "auroc_ci_low", "f1_cv", "fire_frac"]].dtypes.eq(np.float64).all()
    assert set(scores.loc[scores["group"] == "correct", "positive_class"]) == {"passed"}
    assert set(scores.loc[scores["group"] == "incorrect", "positive_class"]) == {"failed"}

    planted = scores[(scores["feature_idx"] == 14439) & (scores["hook_point"] == "resid_pre")].iloc[0]
    assert planted["auroc"] > 0.95 and planted["auroc_ci_low"] > 0.5
    assert planted["n_tasks"] == 200 and planted["n_passed"] == 60 and planted["n_failed"] == 140
    assert planted["sae_id"] == f"local:{saes[16]}"
    unscored = scores[scores["layer"] == 20]
    assert not unscored["scored"].any() and unscored["auroc"].isna().all()
    assert unscored["not_scored_reason"].str.contains("not in the Hugging Face cache").all()

    meta = json.loads(result.metadata_path.read_text())
    for key in (fm.CREATED, fm.INPUTS, fm.MODEL, fm.HOOK_POINTS_KEY, fm.PRIMARY_HOOK_POINT, fm.SAES, fm.STAND_IN_SAES,
                fm.SKIPPED_LAYERS, fm.N_TASKS, fm.N_PASSED, fm.N_FAILED, fm.N_MISSING, fm.N_FEATURES, fm.N_SCORED,
                fm.SEED, fm.N_BOOTSTRAP, fm.MAX_FOLDS, fm.VECTOR_SOURCES, fm.COMPARE, fm.WALL_TIME_S):
        assert key in meta, key
    assert meta[fm.N_BOOTSTRAP] == 1000 and meta[fm.SEED] == 0 and meta[fm.N_SCORED] == 10
    assert meta[fm.PRIMARY_HOOK_POINT] == "resid_pre" and meta[fm.STAND_IN_SAES] is False
    assert [s["layer"] for s in meta[fm.SAES]] == [16, 17, 19]
    assert all(len(s["sha256"]) == 64 and s["format"] == "gemmascope" and s["d_sae"] == D_SAE for s in meta[fm.SAES])
    assert meta[fm.SKIPPED_LAYERS] == [{"layer": 20, "reason": unscored["not_scored_reason"].iloc[0],
                                        "features": ["incorrect[2] #9996"]}]
    assert meta[fm.COMPARE] is None and meta[fm.N_TASKS] == 200
    assert "200 tasks (60 passed); scored in" in result.summary()


def test_report_shows_the_table_sentences_and_plot(data, saes):
    score(data, saes)
    result = report(data)
    text = result.report_path.read_text()
    assert "## SAE features of the base model's analysis" in text
    assert "| feature | layer | latent | AUROC `resid_pre` [95% CI] |" in text
    section = text[text.index("## SAE features"):]
    lines = [l for l in section.splitlines() if l.startswith("| ")]
    assert lines[2].startswith("| correct #1 | 16 | 14439 |") and lines[3].startswith("| incorrect #1 | 19 | 5441 |")
    assert "| incorrect #3 | 20 | 9996 | not scored |" in text
    assert re.search(r"- Best correct feature \(layer 16, latent 14439\) at `resid_pre`: AUROC 0.9\d", text)
    assert "which excludes 0.5: it fires more on passed tasks" in text
    assert "- Best incorrect feature (layer 19, latent 5441)" in text
    assert "- layer 20 (incorrect[2] #9996):" in text
    assert "Stand-in SAEs" not in text
    assert re.search(r"Stage time: \d+\.\d s\.\n", text)
    assert f"![SAE feature AUROC]({FEATURES_PLOT})" in text
    assert_png(result.output_dir / FEATURES_PLOT)
    assert "SAE features at resid_pre: best correct L16#14439 0.9" in result.summary()


def test_every_run_recomputes_under_its_completion_record(data, saes):
    cfg = config(data, saes)
    first = score(data, saes)
    record = read_record(cfg)
    assert record["complete"] and record["settings"]["seed"] == 0 and is_current(cfg)
    stamp = first.scores_path.stat().st_mtime_ns
    again = score(data, saes)
    assert again.scores_path.stat().st_mtime_ns != stamp  # recomputed: no reuse of its own
    pd.testing.assert_frame_equal(again.scores, first.scores)
    other_seed = score(data, saes, seed=1)
    assert not np.allclose(other_seed.scores["auroc_ci_low"].dropna(), first.scores["auroc_ci_low"].dropna())
    np.testing.assert_allclose(other_seed.scores["auroc"].dropna(), first.scores["auroc"].dropna())
    assert not is_current(cfg) and is_current(config(data, saes, seed=1))
    # A changed SAE file is an input: the stage is no longer current.
    gemmascope_sae(saes[17], d_model=D_MODEL, seed=99)
    assert not is_current(config(data, saes, seed=1))


def test_overwrite_removes_a_comparison_left_over(tmp_path, data, saes):
    stale = data.phase_dir / fm.FEATURES_SUBDIR / fm.COMPARE_SCORES_FILE
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    (stale.parent / "notes.txt").write_text("mine")
    result = score(data, saes, overwrite=True)
    assert result.compare_path is None and not stale.exists()
    assert (stale.parent / "notes.txt").read_text() == "mine"


def test_comparison_run_with_only_arr_0_and_a_missing_layer(tmp_path, data, saes):
    base = write_run(tmp_path / "base" / "phase3_5", features=FEATURES, n_tasks=80, n_passed=20, d_model=D_MODEL,
                     compact=False, contract="arr_0", contract_layers=(16, 17), hook_point="resid_pre",
                     model="google/gemma-2-2b", seed=5)
    (base.phase_dir / "metadata.json").write_text(json.dumps({"model_name": "google/gemma-2-2b"}))
    compare_dir = base.activations_dir / "task_activations"
    result = score(data, saes, compare_dir=compare_dir)
    other = pd.read_parquet(result.compare_path)
    assert tuple(other.columns) == fm.SCORE_COLUMNS and len(other) == 12
    scored = other[other["scored"]]
    assert set(scored["hook_point"]) == {"resid_pre"} and set(scored["layer"]) == {16, 17}
    post = other[(other["hook_point"] == "resid_post") & (other["layer"] == 16)].iloc[0]
    assert post["not_scored_reason"] == "that run stores only arr_0, which is resid_pre, not resid_post"
    missing = other[(other["layer"] == 19) & (other["hook_point"] == "resid_pre")].iloc[0]
    assert missing["not_scored_reason"] == "that run stores no vectors at layer 19"
    compare = result.metadata[fm.COMPARE]
    assert compare[fm.COMPARE_LABEL] == "gemma-2-2b" and compare[fm.N_TASKS] == 80 and compare[fm.N_PASSED] == 20
    assert "compare gemma-2-2b: 4 rows scored on 80 tasks (20 passed)" in result.summary()
    # The comparison's activations folder and its dataset (found beside it) are inputs of the record.
    inputs = read_record(config(data, saes, compare_dir=compare_dir))["inputs"]
    assert any(name.endswith("phase3_5/dataset_instruct_temp_0_0.parquet") for name in inputs)

    text = report(data).report_path.read_text()
    assert "AUROC gemma-2-2b [95% CI] |" in text
    assert "(resid_pre) |" in text
    assert "In gemma-2-2b, 1 feature(s) not scored at `resid_pre`: that run stores no vectors at layer 19" in text
    # Without the comparison, its stale file goes.
    assert score(data, saes).compare_path is None and not result.compare_path.exists()


def test_stand_ins_for_the_real_feature_list_and_a_weak_model(tmp_path, shared_data):
    real_list = shared_data / "pva_reference" / "phase2_10" / "top_20_features.json"
    listed = read_feature_list(real_list)
    body = json.loads(real_list.read_text())
    demo = write_run(tmp_path / "phase7_3", features=body, n_tasks=20, n_passed=1, d_model=576)
    result = score(demo, {}, demo_saes=True)
    meta = result.metadata
    layers = sorted({f.layer for f in listed})
    assert meta[fm.STAND_IN_SAES] is True and meta[fm.SKIPPED_LAYERS] == []
    assert [s["layer"] for s in meta[fm.SAES]] == layers
    assert all(s["format"] == "stand-in" and s["stand_in"] and s["d_model"] == 576 and s["d_sae"] == D_SAE
               and s["seed"] == 0 and len(s["sha256"]) == 64 for s in meta[fm.SAES])
    assert sum(s["n_columns"] for s in meta[fm.SAES]) == 40
    assert not (tmp_path / "models").exists()  # nothing stored
    scores = result.scores
    assert scores["scored"].all() and len(scores) == 80
    assert set(scores["sae_id"]) == {f"stand-in:seed_0/layer_{layer}" for layer in layers}
    assert scores["f1_cv_folds"].eq(0).all()  # one passed task: no cross-validation, no crash
    assert "(demo stand-in SAEs, not GemmaScope)" in result.summary()
    text = report(demo).report_path.read_text()
    assert "**Stand-in SAEs.** The SAEs used here are random stand-ins built for the demo model, not GemmaScope" in text
    assert "(only 1 passed task: the interval understates the uncertainty)" in text


def test_a_local_sae_wins_over_the_stand_in(data, saes):
    result = score(data, {16: saes[16]}, demo_saes=True)
    by_layer = {s["layer"]: s for s in result.metadata[fm.SAES]}
    assert by_layer[16]["sae_id"] == f"local:{saes[16]}" and not by_layer[16]["stand_in"]
    assert all(by_layer[layer]["stand_in"] for layer in (17, 19, 20))


def test_no_passed_task_gives_na_everywhere(tmp_path, saes):
    empty = write_run(tmp_path / "phase7_3", features=FEATURES, n_tasks=30, n_passed=0, d_model=D_MODEL)
    result = score(empty, saes)
    assert result.scores["auroc"].isna().all() and result.scores["f1_cv"].isna().all()
    text = report(empty).report_path.read_text()
    assert "AUROC n/a: no passed tasks" in text and "n/a (no passed tasks)" in text


def test_demo_model_has_every_listed_layer(shared_data, demo_model):
    config = demo_model / "config.json"
    n_layers = json.loads(config.read_text())["num_hidden_layers"]
    for phase in ("phase2_10", "phase2_5"):
        layers = {f.layer for f in read_feature_list(shared_data / "pva_reference" / phase / "top_20_features.json")}
        assert max(layers) < n_layers, (phase, sorted(layers), n_layers)


def test_one_line_errors(tmp_path, data, saes):
    with pytest.raises(InputError, match=r"--require-all: 1 layer\(s\) without an SAE \(layer 20: ") as err:
        score(data, saes, require_all=True)
    assert "\n" not in str(err.value)
    narrow = saes | {17: gemmascope_sae(tmp_path / "narrow.npz", d_model=16)}
    with pytest.raises(InputError, match=r"SAE of layer 17 \(local:.*narrow.npz\) has d_model 16, but this run's "
                                         r"resid_pre vectors have 32"):
        score(data, narrow)
    wide = saes | {17: gemmascope_sae(tmp_path / "wide.npz", d_model=D_MODEL, d_sae=1024)}
    with pytest.raises(InputError, match="SAE width 1024 does not match the feature list's 16384"):
        score(data, wide)
    with pytest.raises(InputError, match="cannot tell that run's dataset"):
        score(data, saes, compare_dir=tmp_path / "nowhere" / "task_activations")
    with pytest.raises(InputError, match=r"--sae for layer\(s\) \[3\]: the feature list names no feature there"):
        score(data, saes | {3: saes[16]})
    with pytest.raises(InputError, match="--compare-site resid_mid: choose one of resid_pre, resid_post"):
        config(data, saes, compare_site="resid_mid")
    with pytest.raises(InputError, match="expected LAYER=PATH"):
        FeaturesConfig(sae_options=("16",))


def test_missing_feature_list_leaves_no_output_folder(tmp_path, data, saes):
    with pytest.raises(InputError, match="no top_20_features.json or top_20_latents.json"):
        score(data, saes, phase2_10_dir=tmp_path / "none", phase2_5_dir=tmp_path / "none")
    assert not (data.phase_dir / fm.FEATURES_SUBDIR).exists()
