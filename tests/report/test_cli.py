"""`python cli.py report` through click: default paths, every flag, --compare, bad input."""

from __future__ import annotations

import re
import shutil
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import cli
from report.config import ReportConfig, layer_plot_name
from tests.report.synthetic import write_outputs
from tests.report.test_stage import assert_png

DATASET = "dataset_instruct_temp_0_0.parquet"


def invoke(*args: str, catch_exceptions: bool = False):
    return CliRunner().invoke(cli, ["report", *args], catch_exceptions=catch_exceptions)


# A value per field, other than its default, and how it reads on the command line.
FLAG_VALUES = {
    "data_dir": ("--data-dir", "/tmp/d", Path("/tmp/d")),
    "overwrite": ("--overwrite", None, True),
    "model_type": ("--model-type", "base", "base"),
    "dataset_path": ("--dataset", "/tmp/x.parquet", Path("/tmp/x.parquet")),
    "activations_dir": ("--activations-dir", "/tmp/acts", Path("/tmp/acts")),
    "compare_path": ("--compare", "/tmp/base.parquet", Path("/tmp/base.parquet")),
    "output_dir": ("--output-dir", "/tmp/out", Path("/tmp/out")),
}


def test_every_field_has_a_flag_case():
    assert set(FLAG_VALUES) == {f.name for f in fields(ReportConfig)}


@pytest.mark.parametrize("name", sorted(FLAG_VALUES))
def test_each_flag_reaches_the_config(name, monkeypatch):
    flag, text, expected = FLAG_VALUES[name]
    seen = []

    class Done:
        def summary(self) -> str:
            return "ok"

    monkeypatch.setattr("report.stage.run", lambda config: seen.append(config) or Done())
    result = invoke(flag, *([text] if text is not None else []))
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert getattr(config, name) == expected
    assert all(getattr(config, f.name) == getattr(ReportConfig(), f.name) for f in fields(ReportConfig)
               if f.name not in (name, "data_dir"))


def test_model_type_picks_the_default_dataset(tmp_path):
    assert ReportConfig(data_dir=tmp_path).dataset == tmp_path / "phase7_3" / "dataset_instruct_temp_0_0.parquet"
    base = ReportConfig(data_dir=tmp_path, model_type="base")
    assert base.dataset == tmp_path / "phase7_3" / "dataset_base_temp_0_0.parquet"
    assert base.features_dir == tmp_path / "phase7_3" / "features"
    assert ReportConfig(model_type="instruction_tuned").model_type == "instruction-tuned"  # one spelling


def layer_row(text: str, layer: int) -> list[str]:
    match = re.search(rf"^\| {layer} \|.*\|$", text, flags=re.MULTILINE)
    assert match, f"no table row for layer {layer}"
    return [cell.strip() for cell in match.group(0).strip("|").split("|")]


def test_default_paths_under_data_dir(tmp_path):
    write_outputs(tmp_path / "data", n_tasks=60, n_passed=20, d_model=32, signal_layer=16)
    result = invoke("--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    out = tmp_path / "data" / "phase7_3" / "report"
    for name in ("pass_rate_by_complexity.png", "completion_length.png", layer_plot_name(16), layer_plot_name(19)):
        assert_png(out / name)
    text = (out / "report.md").read_text()
    # Columns: layer, d_model, passed, failed, missing, norm, in-sample, CV "0.97 (5-fold)".
    signal, noise = layer_row(text, 16), layer_row(text, 19)
    assert float(signal[6]) >= 0.95 and float(signal[7].split()[0]) >= 0.9
    assert float(noise[7].split()[0]) <= 0.7
    assert "pass rate: overall (all) 20/60 = 33.3%" in result.output
    assert "layer 16:" in result.output and f"wrote {out / 'report.md'}" in result.output


def test_dataset_activations_and_output_flags_reach_the_library(tmp_path):
    syn = write_outputs(tmp_path / "data", n_tasks=12, n_passed=4)
    elsewhere = tmp_path / "moved"
    elsewhere.mkdir()
    shutil.copy(syn.phase_dir / DATASET, elsewhere / "mine.parquet")
    shutil.move(syn.phase_dir / "activations", tmp_path / "acts")
    out = tmp_path / "out"
    result = invoke("--data-dir", str(tmp_path / "empty"), "--dataset", str(elsewhere / "mine.parquet"),
                    "--activations-dir", str(tmp_path / "acts"), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file() and (out / layer_plot_name(16)).is_file()
    assert not (tmp_path / "empty").exists()
    # Without --activations-dir the moved activations are not found: the flag was used.
    result = invoke("--dataset", str(elsewhere / "mine.parquet"), "--output-dir", str(tmp_path / "out2"))
    assert result.exit_code == 0, result.output
    assert "_no activations found" in (tmp_path / "out2" / "report.md").read_text()


def test_compare_adds_side_by_side_rates_and_agreement(tmp_path):
    syn = write_outputs(tmp_path / "data", n_tasks=30, n_passed=10)
    base = syn.dataset[["task_id", "test_passed", "cyclomatic_complexity"]].copy()
    base["test_passed"] = False
    base.loc[base.index[:5], "test_passed"] = True
    base = base.iloc[2:]  # the base lacks two of our tasks
    base.to_parquet(tmp_path / "base.parquet", index=False)
    result = invoke("--data-dir", str(tmp_path / "data"), "--compare", str(tmp_path / "base.parquet"))
    assert result.exit_code == 0, result.output
    out = syn.phase_dir / "report"
    table = pd.read_csv(out / "compare_tasks.csv")
    assert len(table) == 28 and set(table.columns) >= {"task_id", "passed", "base_passed", "agree"}
    merged = syn.dataset.set_index("task_id").loc[table["task_id"], "test_passed"].to_numpy()
    assert (table["passed"].to_numpy() == merged).all()
    text = (out / "report.md").read_text()
    assert "## Comparison with `base (base)`" in text and "28 shared tasks (2 only in ours, 0 only in the base)" in text
    assert f"| overall | all | 28 | {int(merged.sum())} |" in text
    assert "compare base (base) (verdict unknown): 28 shared tasks" in result.output
    assert "## Comparison with `base (base)` (verdict unknown)" in text
    assert_png(out / "pass_rate_by_complexity.png")


def test_both_verdicts_are_reported_and_compared_like_with_like(tmp_path):
    syn = write_outputs(tmp_path / "data", n_tasks=30, n_passed=10, with_verdicts=True, with_activations=False)
    ds = syn.dataset
    only_robust = ds.loc[ds["robust_test_passed"] & ~ds["legacy_test_passed"], "task_id"].tolist()
    only_legacy = ds.loc[~ds["robust_test_passed"] & ds["legacy_test_passed"], "task_id"].tolist()
    assert only_robust and only_legacy
    base = ds[["task_id", "test_passed", "robust_test_passed", "legacy_test_passed"]].copy()
    base["legacy_test_passed"] = False
    base.to_parquet(tmp_path / "base.parquet", index=False)
    result = invoke("--data-dir", str(tmp_path / "data"), "--compare", str(tmp_path / "base.parquet"))
    assert result.exit_code == 0, result.output
    n_robust, n_legacy = int(ds["robust_test_passed"].sum()), int(ds["legacy_test_passed"].sum())
    assert f"verdicts: robust {n_robust}/30, legacy {n_legacy}/30 (test_passed: robust)" in result.output
    assert f"robust only {', '.join(map(str, only_robust))}" in result.output
    text = (syn.phase_dir / "report" / "report.md").read_text()
    assert "### Both verdicts" in text and "| group | rule | tasks | passed (robust) | pass rate (robust) |" in text
    assert f"Tasks passing under legacy only ({len(only_legacy)}): {', '.join(map(str, only_legacy))}." in text
    assert "## Comparison with `base (base)` (robust)" in text and "## Comparison with `base (base)` (legacy)" in text
    assert "compare base (base) (robust): 30 shared tasks" in result.output
    assert "compare base (base) (legacy): 30 shared tasks" in result.output
    table = pd.read_csv(syn.phase_dir / "report" / "compare_tasks.csv")
    assert table.groupby(["verdict", "base_verdict"]).size().to_dict() == {("legacy", "legacy"): 30, ("robust", "robust"): 30}
    legacy_rows = table[table["verdict"] == "legacy"]
    assert legacy_rows["passed"].sum() == n_legacy and not legacy_rows["base_passed"].any()


def test_zero_pass_dataset_succeeds(tmp_path):
    write_outputs(tmp_path / "data", n_tasks=15, n_passed=0)
    result = invoke("--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    assert "0/15 = 0.0%" in result.output and "norm AUROC n/a" in result.output


def test_missing_dataset_is_one_line_exit_2(tmp_path):
    result = invoke("--data-dir", str(tmp_path), catch_exceptions=True)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "dataset not found" in lines[0] and "evaluate" in lines[0]
    assert not (tmp_path / "phase7_3" / "report").exists()


def test_bad_compare_file_is_one_line_exit_2(tmp_path):
    write_outputs(tmp_path / "data", n_tasks=6, n_passed=2, with_activations=False)
    pd.DataFrame({"task_id": [1]}).to_parquet(tmp_path / "base.parquet")
    base = str(tmp_path / "base.parquet")
    result = invoke("--data-dir", str(tmp_path / "data"), "--compare", base, catch_exceptions=True)
    assert result.exit_code == 2
    assert "base.parquet: missing column(s) test_passed" in result.output
    assert "Traceback" not in result.output
