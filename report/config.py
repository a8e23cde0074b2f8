"""Settings of the report stage (``python cli.py report``) and the names of the files it writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from artifacts.layout import (
    ACTIVATIONS_METADATA_FILE, DATASET_METADATA_FILE, GENERATIONS_FILE,
    GENERATIONS_METADATA_FILE, REPORT_SUBDIR, TASK_ACTIVATIONS_SUBDIR,
)
from artifacts.schema import features as fm
from artifacts.model_type import DatasetInput, ModelTypeSetting
from artifacts.settings import StageConfig, setting

# Files of the report folder (a rerun removes those of its own that no longer apply).
REPORT_FILE = "report.md"
PASS_RATE_PLOT = "pass_rate_by_complexity.png"
COMPLETION_LENGTH_PLOT = "completion_length.png"
COMPARE_TABLE = "compare_tasks.csv"
FEATURES_PLOT = "feature_auroc.png"
FEATURES_DIFFERENCE_PLOT = "feature_auroc_difference.png"  # with the features stage's comparison run
LAYER_PLOT_PATTERN = "layer_*_separation.png"
OWNED_PATTERNS = (REPORT_FILE, PASS_RATE_PLOT, COMPLETION_LENGTH_PLOT, COMPARE_TABLE, LAYER_PLOT_PATTERN)


def layer_plot_name(layer: int) -> str:
    """File name of one layer's separation plot."""
    return f"layer_{layer:02d}_separation.png"


@dataclass(frozen=True)
class ReportConfig(StageConfig, ModelTypeSetting, DatasetInput):
    """Summarize pass rates, outcomes, costs and activation signal; write report.md and plots."""

    STAGE: ClassVar[str] = "report"

    dataset_path: Path | None = setting(
        None, flag="--dataset",
        help="Evaluated dataset; metadata.json, generations.parquet and generations_metadata.json "
        "are read beside it when present [default: DATA_DIR/phase7_3/ and the --model-type's file].")
    activations_dir: Path | None = setting(
        None, help="Folder with activations_metadata.json and task_activations/ "
        "[default: activations/ beside the dataset].")
    compare_path: Path | None = setting(
        None, flag="--compare",
        help="A base-model dataset parquet with the same columns (e.g. Phase 3.5) to set side by side, "
        "per task agreement included.")
    output_dir: Path | None = setting(
        None, help=f"Destination folder [default: DATA_DIR/phase7_3/{REPORT_SUBDIR}].", identity=False)

    @property
    def features_dir(self) -> Path:
        """The features stage's output beside the dataset (its section is added when present)."""
        return self.dataset.parent / fm.FEATURES_SUBDIR

    @property
    def folder(self) -> Path:
        return self.output_dir or self.layout.phase7_3 / REPORT_SUBDIR

    def inputs(self) -> list[Path]:
        beside = [self.dataset.parent / name for name in (DATASET_METADATA_FILE, GENERATIONS_FILE,
                                                          GENERATIONS_METADATA_FILE)]
        activations = [self.activations / ACTIVATIONS_METADATA_FILE, self.activations / TASK_ACTIVATIONS_SUBDIR]
        features = [self.features_dir / name for name in (fm.FEATURES_METADATA_FILE, fm.FEATURE_SCORES_FILE,
                                                          fm.COMPARE_SCORES_FILE, fm.SAE_FIT_FILE, fm.PROBES_FILE,
                                                          fm.DIFFERENCES_FILE)]
        compare = [self.compare_path, self.compare_path.parent / DATASET_METADATA_FILE] if self.compare_path else []
        return [self.dataset, *beside, *activations, *features, *compare]

    def outputs(self) -> list[Path]:
        fixed = [self.folder / name for name in (REPORT_FILE, PASS_RATE_PLOT, COMPLETION_LENGTH_PLOT, COMPARE_TABLE,
                                                 FEATURES_PLOT, FEATURES_DIFFERENCE_PLOT)]
        return [*fixed, *sorted(self.folder.glob(LAYER_PLOT_PATTERN))]

    def record_dir(self) -> Path:
        return self.folder
