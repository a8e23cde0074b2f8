"""Settings of the features stage (``python cli.py features``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from artifacts.errors import InputError
from artifacts.feature_list import FILE_NAMES, AnalysisDirs, find_best_layers
from artifacts.layout import ACTIVATIONS_SUBDIR, TASK_ACTIVATIONS_SUBDIR
from artifacts.schema import features as fm
from artifacts.schema.activations import FEATURE_VECTORS_FILE, HOOK_POINTS
from artifacts.model_type import DatasetInput, ModelTypeSetting
from artifacts.settings import StageConfig, setting
from features.sae import DEFAULT_SAE_REPO, parse_sae_options


@dataclass(frozen=True)
class FeaturesConfig(StageConfig, AnalysisDirs, ModelTypeSetting, DatasetInput):
    """Each listed SAE feature vs test_passed: AUROC with a bootstrap interval, permutation p-value, BH q-value,
    percentile among random latents and a verdict; the SAE's fit (FVU, L0) and dense probes beside them.

    The feature list is the one that gave the best layers (Phase 2.10, else 2.5); each of its
    layers' GemmaScope SAE (whole, one layer at a time) encodes the last-prompt-token vectors at
    resid_pre and resid_post, and a sample of the stored token vectors at the best layers.
    """

    STAGE: ClassVar[str] = "features"

    dataset_path: Path | None = setting(
        None, flag="--dataset",
        help="Evaluated dataset (task_id, test_passed) [default: DATA_DIR/phase7_3/ and the --model-type's file].")
    activations_dir: Path | None = setting(
        None, help="This run's activations folder: feature_layer_vectors.npz, else task_activations/ "
        f"[default: {ACTIVATIONS_SUBDIR}/ beside the dataset].")
    output_dir: Path | None = setting(
        None, help=f"Destination [default: DATA_DIR/phase7_3/{fm.FEATURES_SUBDIR}].", identity=False)
    sae_options: tuple[str, ...] = setting(
        (), flag="--sae", metavar="LAYER=PATH",
        help="A local SAE file for one layer (GemmaScope params.npz); repeat per layer. "
        "Wins over the hub and --demo-saes.")
    sae_repo: str = setting(
        DEFAULT_SAE_REPO,
        help="Hugging Face repository in GemmaScope's layout (layer_L/width_16k/average_l0_N/params.npz).")
    demo_saes: bool = setting(
        False, help="Use random stand-in SAEs (full-width JumpReLU SAEs built from a fixed seed at run time, nothing "
        "stored) instead of the hub: for the demo model, which GemmaScope does not cover. The report marks them as "
        "stand-ins.")
    require_all: bool = setting(False, help="Fail when a layer's SAE cannot be had, instead of skipping its features.")
    seed: int = setting(0, help="Seed of the statistics: bootstrap, permutations, null latents, folds, token sample.")
    token_vectors: int = setting(
        2048, minimum=0,
        help="Token vectors sampled (seeded) per best layer and run for the SAE's fit on all tokens; 0: every token "
        "(minutes per layer at Gemma-2-2B size).")
    compare_dir: Path | None = setting(
        None, flag="--compare-activations",
        help="Another run's task_activations folder (e.g. the base model's): score the same features there too.")
    compare_dataset: Path | None = setting(
        None, help="That run's evaluated dataset [default: the one dataset*.parquet two folders above its "
        "task_activations].")
    compare_site: str | None = setting(
        None, choices=HOOK_POINTS,
        help="Site of that run's arr_0 when its activations_metadata.json does not name one.")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_sae_options(self.sae_options, check_files=False)

    @property
    def folder(self) -> Path:
        return self.output_dir or self.layout.phase7_3 / fm.FEATURES_SUBDIR

    def feature_list_path(self) -> Path:  # type: ignore[override]  (required here)
        """The feature list that gave the best layers (InputError when there is none)."""
        return Path(find_best_layers(self.analysis_folders).source)

    @property
    def compare_activations(self) -> Path | None:
        """``--compare-activations`` when it holds the vectors file or ``task_activations/``, else its parent."""
        folder = self.compare_dir
        if folder is None:
            return None
        is_parent = (folder / TASK_ACTIVATIONS_SUBDIR).is_dir() or (folder / FEATURE_VECTORS_FILE).is_file()
        return folder if is_parent else folder.parent

    def compare_dataset_path(self) -> Path | None:
        """``--compare-dataset``, else the one ``dataset*.parquet`` beside the comparison's activations (InputError)."""
        if self.compare_dir is None or self.compare_dataset is not None:
            return self.compare_dataset
        candidates = self._compare_dataset_candidates()
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise InputError(
                f"--compare-activations {self.compare_dir}: cannot tell that run's dataset ({found} in "
                f"{self.compare_activations.parent}); pass --compare-dataset"
            )
        return candidates[0]

    def _compare_dataset_candidates(self) -> list[Path]:
        return sorted(self.compare_activations.parent.glob("dataset*.parquet"))

    def inputs(self) -> list[Path]:
        candidates = [folder / name for folder in self.analysis_folders for name, _ in FILE_NAMES]
        local = parse_sae_options(self.sae_options, check_files=False).values()
        compare = []
        if self.compare_dir is not None:
            datasets = [self.compare_dataset] if self.compare_dataset else self._compare_dataset_candidates()
            compare = [self.compare_activations, *datasets]
        return [self.dataset, self.activations, *candidates, *local, *compare]

    def outputs(self) -> list[Path]:
        return [self.folder / name for name in (fm.FEATURE_SCORES_FILE, fm.COMPARE_SCORES_FILE, fm.SAE_FIT_FILE,
                                                fm.PROBES_FILE, fm.DIFFERENCES_FILE, fm.FEATURES_METADATA_FILE)]

    def record_dir(self) -> Path:
        return self.folder
