"""The report stage end to end on synthetic files: outputs, markdown content, stale files, edge cases, record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from artifacts.files import write_json
from artifacts.records import is_current, read_record
from report.config import ReportConfig, layer_plot_name
from report.stage import run as run_report
from tests.report.synthetic import write_outputs


def assert_png(path: Path, min_size: tuple[int, int] = (400, 300)) -> None:
    """A real, non-blank PNG of at least ``min_size`` pixels."""
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1]
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    assert pixels.std() > 5.0, f"{path} looks blank"


def config(syn, out: Path, **kwargs) -> ReportConfig:
    return ReportConfig(data_dir=syn.data_dir, dataset_path=syn.phase_dir / "dataset_instruct_temp_0_0.parquet",
                        output_dir=out, **kwargs)


def run(syn, out: Path, **kwargs):
    return run_report(config(syn, out, **kwargs))


def test_writes_report_and_plots(tmp_path):
    syn = write_outputs(tmp_path / "data", n_tasks=40, n_passed=12)
    result = run(syn, tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))
    assert names == sorted(["report.md", "pass_rate_by_complexity.png", "completion_length.png",
                            layer_plot_name(16), layer_plot_name(19)])
    assert sorted(p.name for p in result.files) == names
    for png in (tmp_path / "out").glob("*.png"):
        assert_png(png)
    text = result.report_path.read_text()
    for image in ("pass_rate_by_complexity.png", "completion_length.png", layer_plot_name(16), layer_plot_name(19)):
        assert f"]({image})" in text
    assert "| overall | all | 40 | 12 | 30.0% |" in text
    assert "optimistic" in text and "replay fidelity: n_tasks 5" in text
    assert "pass rate: overall (all) 12/40 = 30.0%" in result.summary()


def test_planted_layer_separates_and_noise_layer_does_not(tmp_path):
    syn = write_outputs(tmp_path / "data", n_tasks=80, n_passed=25, d_model=32, signal_layer=16)
    seps = {s.layer: s for s in run(syn, tmp_path / "out").stats.layers}
    assert seps[16].projection_auroc > 0.95 and seps[16].cross_validated.auroc > 0.9
    assert seps[16].cross_validated.scores.shape == (80,)  # the held-out panel's scores
    assert abs(seps[19].cross_validated.auroc - 0.5) < 0.2
    # In-sample on noise is optimistic: the reason the report shows the cross-validated number.
    assert seps[19].projection_auroc > seps[19].cross_validated.auroc


def test_zero_pass_dataset_reports_na(tmp_path):
    syn = write_outputs(tmp_path / "data", n_tasks=20, n_passed=0)
    result = run(syn, tmp_path / "out")
    for png in (tmp_path / "out").glob("*.png"):
        assert_png(png)
    text = result.report_path.read_text()
    assert "| overall | all | 20 | 0 | 0.0% |" in text
    assert "| 16 | 32 | 0 | 20 | 0 | n/a | n/a | n/a |" in text
    assert "projection AUROC in-sample n/a" in result.summary()


def test_all_pass_and_single_pass_datasets(tmp_path):
    for n_passed in (10, 1):
        syn = write_outputs(tmp_path / f"data{n_passed}", n_tasks=10, n_passed=n_passed)
        result = run(syn, tmp_path / f"out{n_passed}")
        for png in (tmp_path / f"out{n_passed}").glob("*.png"):
            assert_png(png)
        (sep,) = [s for s in result.stats.layers if s.layer == 16]
        # No AUROC with fewer than 2 tasks in a class (stats.labels.MIN_PER_CLASS), no folds either.
        assert sep.cross_validated.auroc is None and sep.projection_auroc is None and sep.norm_auroc is None
        assert (sep.projections is None) == (n_passed == 10)  # one passed task still gives a direction


def test_dataset_alone_gives_a_report(tmp_path):
    syn = write_outputs(tmp_path / "data", n_tasks=8, n_passed=2, with_activations=False, with_generations=False)
    (syn.phase_dir / "metadata.json").unlink()
    result = run(syn, tmp_path / "out")
    text = result.report_path.read_text()
    assert "_no activations found" in text and "_no stage metadata found._" in text
    assert "completion characters" in text  # lengths fall back to the completion text
    assert_png(tmp_path / "out" / "pass_rate_by_complexity.png")


def test_rerun_removes_stale_report_files_only(tmp_path):
    syn = write_outputs(tmp_path / "data", n_tasks=12, n_passed=4)
    out = tmp_path / "out"
    base = tmp_path / "base.parquet"
    syn.dataset[["task_id", "test_passed"]].to_parquet(base)
    run(syn, out, compare_path=base)
    assert (out / "compare_tasks.csv").is_file() and (out / layer_plot_name(19)).is_file()
    (out / "notes.txt").write_text("mine")
    acts_meta = syn.phase_dir / "activations" / "activations_metadata.json"
    write_json(acts_meta, {**json.loads(acts_meta.read_text()), "layers": [16]})
    run(syn, out)
    assert not (out / "compare_tasks.csv").exists() and not (out / layer_plot_name(19)).exists()
    assert (out / layer_plot_name(16)).is_file() and (out / "notes.txt").read_text() == "mine"
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind


def test_completion_record_follows_inputs_and_outputs(tmp_path):
    syn = write_outputs(tmp_path / "data", n_tasks=12, n_passed=4)
    cfg = config(syn, tmp_path / "out")
    assert not is_current(cfg)
    run_report(cfg)
    record = read_record(cfg)
    assert record["complete"] and record["stage"] == "report" and is_current(cfg)
    assert any(name.endswith(layer_plot_name(16)) for name in record["outputs"])
    # The features stage's output beside the dataset is an input: its section would change.
    features = syn.phase_dir / "features"
    features.mkdir()
    (features / "features_metadata.json").write_text("{}")
    assert not is_current(cfg)
    run_report(cfg)
    assert is_current(cfg)
    (tmp_path / "out" / "report.md").write_text("edited by hand")
    assert not is_current(cfg)
