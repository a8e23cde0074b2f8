"""The features stage end to end on real-format files: every table against its schema, the SAE's fit against
an independent computation, significance, verdicts, the report section, the completion record, comparison
runs (base beside instruct), stand-in SAEs, and its one-line errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from artifacts.errors import InputError
from artifacts.feature_list import read_feature_list
from artifacts.layout import activation_file_name
from artifacts.records import is_current, read_record
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from features.config import FeaturesConfig
from features.stage import run
from report.config import FEATURES_DIFFERENCE_PLOT, FEATURES_PLOT, ReportConfig
from report.stage import run as run_report
from tests.features.synthetic import D_SAE, direction, feature_list, gemmascope_sae, write_run
from tests.report.test_stage import assert_png

D_MODEL = 32
FEATURES = feature_list([(16, 14439), (16, 11225), (17, 9162)], [(19, 5441), (17, 13444), (20, 9996)])
# FVU in float64 against the stage's float32 products: relative differences measured up to 2.3e-8 over 4 seeds of
# these runs and SAEs (L0 exact, FVU of the fitting SAEs exactly 0); the tolerance leaves a margin of 40x.
FIT_RTOL = 1e-6


def offline(**_):
    raise ConnectionError("hub unreachable in tests")


@pytest.fixture
def data(tmp_path):
    return write_run(tmp_path / "phase7_3", features=FEATURES, n_tasks=200, n_passed=60, d_model=D_MODEL,
                     contract="last", contract_layers=(16, 19), hook_point="resid_pre")


@pytest.fixture
def saes(tmp_path):
    # Layers 16 and 19 fit the vectors (layer 16 plants correct[0] along the direction separating passed
    # tasks); layer 17's decoder is random (it does not fit); layer 20 has no SAE.
    return {
        16: gemmascope_sae(tmp_path / "sae16.npz", d_model=D_MODEL, planted={14439: direction(16, D_MODEL)}, seed=16,
                           fits=True),
        17: gemmascope_sae(tmp_path / "sae17.npz", d_model=D_MODEL, seed=17),
        19: gemmascope_sae(tmp_path / "sae19.npz", d_model=D_MODEL, seed=19, fits=True),
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


def row(table: pd.DataFrame, feature_idx: int, hook: str = "resid_pre"):
    return table[(table["feature_idx"] == feature_idx) & (table["hook_point"] == hook)].iloc[0]


def test_tables_match_their_schema(data, saes):
    result = score(data, saes)
    folder = result.output_dir
    scores = pd.read_parquet(folder / fm.FEATURE_SCORES_FILE)
    assert tuple(scores.columns) == fm.SCORE_COLUMNS and len(scores) == 6 * 2
    assert list(scores["hook_point"].unique()) == list(HOOK_POINTS)
    assert scores["scored"].dtype == bool and scores["layer"].dtype == np.int64
    numbers = ["auroc", "auroc_ci_low", "f1_cv", "fire_frac", "p_value", "q_value", "null_percentile", "sae_fvu"]
    assert scores[numbers].dtypes.eq(np.float64).all() and set(scores["verdict"]) <= set(fm.VERDICTS)
    assert set(scores.loc[scores["group"] == "incorrect", "positive_class"]) == {"failed"}
    fits = pd.read_parquet(folder / fm.SAE_FIT_FILE)
    assert tuple(fits.columns) == fm.SAE_FIT_COLUMNS and set(fits["run"]) == {fm.RUN_THIS}
    last = fits[fits["positions"] == fm.POSITIONS_LAST_PROMPT]
    assert sorted(zip(last["layer"], last["hook_point"])) == sorted((l, h) for l in (16, 17, 19) for h in HOOK_POINTS)
    assert (last["n_vectors"] == 200).all()
    tokens = fits[fits["positions"] == fm.POSITIONS_ALL_TOKENS]
    assert sorted(tokens["layer"]) == [16, 19] and set(tokens["hook_point"]) == {"resid_pre"}
    assert (tokens["n_vectors"] == 200 * 5).all()  # 5 of 6 positions per task: fewer than --token-vectors 2048
    probes = pd.read_parquet(folder / fm.PROBES_FILE)
    assert tuple(probes.columns) == fm.PROBE_COLUMNS and len(probes) == 3 * 2 * 2
    assert set(probes["inputs"]) == {fm.INPUTS_RESIDUAL, fm.INPUTS_LISTED} and (probes["n_folds"] == 5).all()
    assert not (folder / fm.DIFFERENCES_FILE).exists() and not (folder / fm.COMPARE_SCORES_FILE).exists()

    meta = json.loads(result.metadata_path.read_text())
    assert meta[fm.N_PERMUTATIONS] >= 10_000 and meta[fm.N_NULL_LATENTS] == 1000 and meta[fm.TOKEN_VECTORS] == 2048
    assert meta[fm.RULES][fm.RULE_REFERENCE] is None and meta[fm.RULES][fm.RULE_FVU_BOUND] == 0.5
    assert {"sae_load", "sae_fit", "probes", "all_tokens", "statistics"} <= set(meta[fm.STEP_SECONDS])
    assert meta[fm.N_BOOTSTRAP] == 1000 and meta[fm.N_SCORED] == 10 and meta[fm.STAND_IN_SAES] is False
    assert all(len(s["sha256"]) == 64 and s["format"] == "gemmascope" and s["d_sae"] == D_SAE for s in meta[fm.SAES])
    assert meta[fm.SKIPPED_LAYERS] == [{"layer": 20, "reason": row(scores, 9996)["not_scored_reason"],
                                        "features": ["incorrect[2] #9996"]}]


def test_planted_feature_carries_over_and_the_others_get_their_rule(data, saes):
    scores = score(data, saes).scores
    planted = row(scores, 14439)
    assert planted["auroc"] > 0.95 and planted["auroc_ci_low"] > 0.5
    assert planted["p_value"] == pytest.approx(1 / 10_001) and planted["q_value"] < 0.05
    assert planted["null_percentile"] > 99 and planted["sae_fvu"] < 1e-6
    assert planted["verdict"] == fm.VERDICT_CARRIES_OVER
    # A random latent of a fitting SAE: no evidence; a latent of an SAE that does not fit: cannot tell.
    assert row(scores, 11225)["verdict"] == fm.VERDICT_DOES_NOT and row(scores, 11225)["q_value"] >= 0.05
    unfit = row(scores, 9162)
    assert unfit["verdict"] == fm.VERDICT_CANNOT_TELL and unfit["sae_fvu"] > 1
    assert unfit["verdict_reason"].startswith("SAE does not fit")
    missing = row(scores, 9996)
    assert not missing["scored"] and np.isnan(missing["auroc"]) and np.isnan(missing["q_value"])
    assert missing["verdict"] == fm.VERDICT_CANNOT_TELL and "not in the Hugging Face cache" in missing["verdict_reason"]


def reference_fit(x: np.ndarray, path) -> tuple[float, float]:
    """Independent FVU and L0: float64 numpy over the whole params.npz, every vector at once."""
    with np.load(path) as p:
        w_enc, b_enc, thr, w_dec, b_dec = (p[k].astype(np.float64) for k in ("W_enc", "b_enc", "threshold", "W_dec",
                                                                              "b_dec"))
    pre = x.astype(np.float64) @ w_enc + b_enc
    acts = np.where((pre > thr) & (pre > 0), pre, 0.0)
    x_hat = acts @ w_dec + b_dec
    fvu = np.sum((x - x_hat) ** 2) / np.sum((x - x.mean(axis=0)) ** 2)
    return float(fvu), float(np.count_nonzero(acts) / x.shape[0])


def test_fvu_and_l0_equal_an_independent_computation(data, saes):
    fits = score(data, saes, token_vectors=0).tables.fits
    with np.load(data.activations_dir / "feature_layer_vectors.npz") as npz:
        vectors = {site: npz[site] for site in HOOK_POINTS}
        layers = list(npz["layers"])
    for layer in (17, 19):  # a random decoder (FVU > 1) and a fitting one
        for site in HOOK_POINTS:
            got = fits[(fits["layer"] == layer) & (fits["hook_point"] == site)
                       & (fits["positions"] == fm.POSITIONS_LAST_PROMPT)].iloc[0]
            fvu, l0 = reference_fit(vectors[site][:, layers.index(layer)], saes[layer])
            assert got["fvu"] == pytest.approx(fvu, rel=FIT_RTOL, abs=1e-9) and got["l0"] == pytest.approx(l0)
    folder = data.activations_dir / "task_activations"
    tokens = np.concatenate([np.load(folder / activation_file_name(t, 19))["sequence"][1:]
                             for t in data.task_ids]).astype(np.float32)
    got = fits[(fits["layer"] == 19) & (fits["positions"] == fm.POSITIONS_ALL_TOKENS)].iloc[0]
    fvu, l0 = reference_fit(tokens, saes[19])
    assert got["n_vectors"] == len(tokens) == 1000
    assert got["fvu"] == pytest.approx(fvu, rel=FIT_RTOL, abs=1e-9) and got["l0"] == pytest.approx(l0)


def test_a_token_sample_is_seeded_and_sized(data, saes):
    first = score(data, saes, token_vectors=300).tables.fits
    again = score(data, saes, token_vectors=300).tables.fits
    other = score(data, saes, token_vectors=300, seed=1).tables.fits
    tokens = [f[f["positions"] == fm.POSITIONS_ALL_TOKENS].reset_index(drop=True) for f in (first, again, other)]
    assert (tokens[0]["n_vectors"] == 300).all()
    pd.testing.assert_frame_equal(tokens[0], tokens[1])
    assert not np.allclose(tokens[0]["l0"], tokens[2]["l0"])


def test_among_200_random_features_at_most_5_percent_are_discoveries(tmp_path):
    """No signal anywhere: BH keeps the share of q < 0.05 at the false discovery rate or below."""
    rng = np.random.default_rng(7)
    latents = rng.choice(np.arange(100, D_SAE), size=200, replace=False)
    listed = feature_list([(16, int(i)) for i in latents[:100]], [(19, int(i)) for i in latents[100:]])
    null = write_run(tmp_path / "phase7_3", features=listed, n_tasks=120, n_passed=50, d_model=D_MODEL, shift=0.0)
    saes = {layer: gemmascope_sae(tmp_path / f"s{layer}.npz", d_model=D_MODEL, seed=layer, fits=True)
            for layer in (16, 19)}
    scores = score(null, saes).scores
    assert len(scores) == 400 and scores["scored"].all()
    assert (scores["q_value"] < 0.05).mean() <= 0.05
    assert (scores["verdict"] == fm.VERDICT_CARRIES_OVER).mean() <= 0.05


def test_report_shows_rules_verdicts_links_fit_and_probes(data, saes):
    score(data, saes)
    result = report(data)
    text = result.report_path.read_text()
    section = text[text.index("## SAE features"):]
    assert "Verdict rules, for each listed feature at each site" in section
    assert "It fits when FVU <= 0.5 (no reference run given" in section
    lines = [l for l in section.splitlines() if l.startswith("| ")]
    assert lines[2].startswith("| [correct #1](https://www.neuronpedia.org/gemma-2-2b/16-gemmascope-res-16k/14439) "
                               "| 16 | 14439 |")
    assert re.search(r"- Best correct feature \(\[layer 16, latent 14439\]\(https://www.neuronpedia.org/gemma-2-2b/"
                     r"16-gemmascope-res-16k/14439\)\) at `resid_pre`: \*\*carries over\*\* \(q ", section)
    assert "**cannot tell** (SAE does not fit" not in section.split("| feature |")[0]  # best features fit
    assert "| incorrect #3 | 20 | 9996 | not scored |" not in section  # linked now
    assert "| 9996 | not scored |" in section
    assert "| 17 | last_prompt |" in section and "| 16 | all_tokens |" in section
    assert "Probes for `passed`" in section and "listed_features AUROC [95% CI], p" in section
    assert "Stand-in SAEs" not in text and re.search(r"Stage time: \d+\.\d s\.\n", text)
    assert f"![SAE feature AUROC]({FEATURES_PLOT})" in text and FEATURES_DIFFERENCE_PLOT not in text
    assert_png(result.output_dir / FEATURES_PLOT)
    assert "SAE features at resid_pre: best correct L16#14439 0.9" in result.summary()
    assert "carries over" in result.summary()


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


def test_overwrite_removes_comparison_files_left_over(data, saes):
    folder = data.phase_dir / fm.FEATURES_SUBDIR
    folder.mkdir(parents=True)
    for name in (fm.COMPARE_SCORES_FILE, fm.DIFFERENCES_FILE):
        (folder / name).write_bytes(b"old")
    (folder / "notes.txt").write_text("mine")
    result = score(data, saes, overwrite=True)
    assert result.compare_path is None
    assert not (folder / fm.COMPARE_SCORES_FILE).exists() and not (folder / fm.DIFFERENCES_FILE).exists()
    assert (folder / "notes.txt").read_text() == "mine"


def base_run(tmp_path, **kwargs):
    """The base model's run of the same tasks: its own outcomes and vectors, dataset named for its model type."""
    args = dict(features=FEATURES, n_tasks=200, n_passed=50, d_model=D_MODEL, model="google/gemma-2-2b", seed=5,
                dataset_name="dataset_base_temp_0_0.parquet", contract="last", contract_layers=(16, 19),
                hook_point="resid_pre")
    base = write_run(tmp_path / "base" / "phase7_3", **(args | kwargs))
    (base.phase_dir / "metadata.json").write_text(json.dumps({"model_name": "google/gemma-2-2b",
                                                              "model_type": "base"}))
    return base


def test_base_beside_instruct(tmp_path, data, saes):
    base = base_run(tmp_path)
    result = score(data, saes, compare_dir=base.activations_dir)
    folder, tables = result.output_dir, result.tables
    compare = pd.read_parquet(folder / fm.COMPARE_SCORES_FILE)
    assert tuple(compare.columns) == fm.SCORE_COLUMNS and compare["scored"].sum() == 10
    assert row(compare, 14439)["verdict"] == fm.VERDICT_CARRIES_OVER  # the base run has the planted signal too
    fits = pd.read_parquet(folder / fm.SAE_FIT_FILE)
    assert set(fits["run"]) == {fm.RUN_THIS, fm.RUN_COMPARE}
    assert len(fits[(fits["run"] == fm.RUN_COMPARE) & (fits["positions"] == fm.POSITIONS_ALL_TOKENS)]) == 2
    assert set(pd.read_parquet(folder / fm.PROBES_FILE)["run"]) == {fm.RUN_THIS, fm.RUN_COMPARE}
    differences = pd.read_parquet(folder / fm.DIFFERENCES_FILE)
    assert tuple(differences.columns) == fm.DIFFERENCE_COLUMNS and len(differences) == 12
    planted = row(differences, 14439)
    assert planted["n_shared_tasks"] == 200
    assert planted["auroc_difference"] == pytest.approx(planted["auroc_this"] - planted["auroc_compare"])
    assert planted["difference_ci_low"] <= planted["auroc_difference"] <= planted["difference_ci_high"]
    assert planted["auroc_this"] == pytest.approx(row(tables.scores, 14439)["auroc"])
    assert np.isnan(row(differences, 9996)["auroc_difference"]) and row(differences, 9996)["n_shared_tasks"] == 0
    # The verdict's fit rule takes the base run's FVU as the reference.
    assert result.metadata[fm.RULES][fm.RULE_REFERENCE] == "gemma-2-2b"
    assert "the reference's" in row(tables.scores, 14439)["verdict_reason"]
    assert "compare gemma-2-2b: 10 rows scored on 200 tasks (50 passed)" in result.summary()

    text = report(data).report_path.read_text()
    assert "gemma-2-2b-it beside gemma-2-2b at `resid_pre`, on the tasks both hold" in text
    assert "| difference [95% paired CI] |" in text and "AUROC gemma-2-2b [95% CI] |" in text
    assert "FVU <= the FVU of gemma-2-2b (the reference run)" in text
    assert f"![AUROC differences]({FEATURES_DIFFERENCE_PLOT})" in text
    assert_png(data.phase_dir / "report" / FEATURES_DIFFERENCE_PLOT)
    # Without the comparison, its files and its plot go.
    score(data, saes)
    assert not (folder / fm.DIFFERENCES_FILE).exists()
    report(data)
    assert not (data.phase_dir / "report" / FEATURES_DIFFERENCE_PLOT).exists()


def test_identical_runs_compared_differ_by_exactly_zero(data, saes):
    result = score(data, saes, compare_dir=data.activations_dir, compare_dataset=data.dataset_path)
    scored = result.tables.differences.dropna(subset=["auroc_difference"])
    assert len(scored) == 10
    assert (scored["auroc_difference"] == 0).all()
    assert (scored["difference_ci_low"] <= 0).all() and (scored["difference_ci_high"] >= 0).all()
    pd.testing.assert_frame_equal(result.compare_scores.drop(columns=["verdict", "verdict_reason"]),
                                  result.scores.drop(columns=["verdict", "verdict_reason"]))


def test_comparison_run_with_only_arr_0_and_a_missing_layer(tmp_path, data, saes):
    base = base_run(tmp_path, n_tasks=80, n_passed=20, compact=False, contract="arr_0", contract_layers=(16, 17),
                    dataset_name="dataset_instruct_temp_0_0.parquet")
    compare_dir = base.activations_dir / "task_activations"
    result = score(data, saes, compare_dir=compare_dir)
    other = pd.read_parquet(result.compare_path)
    assert tuple(other.columns) == fm.SCORE_COLUMNS and len(other) == 12
    scored = other[other["scored"]]
    assert set(scored["hook_point"]) == {"resid_pre"} and set(scored["layer"]) == {16, 17}
    post = row(other, 14439, "resid_post")
    assert post["not_scored_reason"] == "that run stores only arr_0, which is resid_pre, not resid_post"
    assert row(other, 5441)["not_scored_reason"] == "that run stores no vectors at layer 19"
    compare = result.metadata[fm.COMPARE]
    assert compare[fm.COMPARE_LABEL] == "gemma-2-2b" and compare[fm.N_TASKS] == 80 and compare[fm.N_PASSED] == 20
    # Its tasks are a subset of ours: the differences are over the 80 shared ones.
    assert row(result.tables.differences, 14439)["n_shared_tasks"] == 80  # its ids 11..90 among our 11..210
    inputs = read_record(config(data, saes, compare_dir=compare_dir))["inputs"]
    assert any(name.endswith("phase7_3/dataset_instruct_temp_0_0.parquet") and "base" in name for name in inputs)

    text = report(data).report_path.read_text()
    assert "(resid_pre) |" in text
    assert "In gemma-2-2b, 1 feature(s) not scored at `resid_pre`: that run stores no vectors at layer 19" in text


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
    assert sum(s["n_listed"] for s in meta[fm.SAES]) == 40
    assert not (tmp_path / "models").exists()  # nothing stored
    scores = result.scores
    assert scores["scored"].all() and len(scores) == 80
    assert set(scores["sae_id"]) == {f"stand-in:seed_0/layer_{layer}" for layer in layers}
    assert scores["f1_cv_folds"].eq(0).all() and scores["auroc"].isna().all()  # one passed task: n/a, no crash
    # Their fit is poor, so every verdict is "cannot tell", for that reason first.
    assert (result.tables.fits["fvu"] > 10).all()
    assert (scores["verdict"] == fm.VERDICT_CANNOT_TELL).all()
    assert scores["verdict_reason"].str.startswith("SAE does not fit").all()
    assert "(demo stand-in SAEs, not GemmaScope)" in result.summary()
    text = report(demo).report_path.read_text()
    assert "**Stand-in SAEs.** The SAEs used here are random stand-ins built for the demo model, not GemmaScope" in text
    assert "so every verdict reads *cannot tell*" in text
    assert "n/a (fewer than 2 passed tasks)" in text


def test_a_local_sae_wins_over_the_stand_in(data, saes):
    result = score(data, {16: saes[16]}, demo_saes=True)
    by_layer = {s["layer"]: s for s in result.metadata[fm.SAES]}
    assert by_layer[16]["sae_id"] == f"local:{saes[16]}" and not by_layer[16]["stand_in"]
    assert all(by_layer[layer]["stand_in"] for layer in (17, 19, 20))


def test_no_passed_task_gives_na_everywhere(tmp_path, saes):
    empty = write_run(tmp_path / "phase7_3", features=FEATURES, n_tasks=30, n_passed=0, d_model=D_MODEL)
    result = score(empty, saes)
    for name in ("auroc", "f1_cv", "p_value", "q_value", "null_percentile"):
        assert result.scores[name].isna().all(), name
    assert result.tables.probes["auroc"].isna().all() and (result.tables.probes["n_folds"] == 0).all()
    assert (result.scores["verdict"] == fm.VERDICT_CANNOT_TELL).all()
    text = report(empty).report_path.read_text()
    assert "n/a (fewer than 2 passed tasks)" in text and "n/a (< 2 tasks in a class)" in text


def test_model_type_picks_the_default_dataset(tmp_path, saes):
    base = base_run(tmp_path)
    data_dir = base.phase_dir.parent
    args = dict(data_dir=data_dir, phase2_10_dir=base.feature_list.parent,
                sae_options=tuple(f"{layer}={path}" for layer, path in saes.items()))
    assert FeaturesConfig(**args).dataset == data_dir / "phase7_3" / "dataset_instruct_temp_0_0.parquet"
    with pytest.raises(InputError, match="dataset_instruct_temp_0_0.parquet"):
        run(FeaturesConfig(**args), download=offline)
    result = run(FeaturesConfig(**args, model_type="base"), download=offline)
    assert result.metadata[fm.INPUTS]["dataset"].endswith("phase7_3/dataset_base_temp_0_0.parquet")
    assert result.metadata[fm.N_PASSED] == 50
    text = run_report(ReportConfig(data_dir=data_dir, model_type="base")).report_path.read_text()
    assert "dataset_base_temp_0_0.parquet" in text and "## SAE features of the base model's analysis" in text


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
    with pytest.raises(InputError, match="--model-type chat: choose one of"):
        config(data, saes, model_type="chat")
    with pytest.raises(InputError, match="expected LAYER=PATH"):
        FeaturesConfig(sae_options=("16",))


def test_missing_feature_list_leaves_no_output_folder(tmp_path, data, saes):
    with pytest.raises(InputError, match="no top_20_features.json or top_20_latents.json"):
        score(data, saes, phase2_10_dir=tmp_path / "none", phase2_5_dir=tmp_path / "none")
    assert not (data.phase_dir / fm.FEATURES_SUBDIR).exists()
