"""Settings of the replay stage (``python cli.py replay-activations``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from artifacts.device import DEVICE_CHOICES, DTYPE_NAMES
from artifacts.feature_list import AnalysisSettings
from artifacts.layout import ACTIVATIONS_SUBDIR, GENERATIONS_FILE, TASK_ACTIVATIONS_SUBDIR, GenerationsInput
from artifacts.schema.activations import ACTIVATION_FORMATS, HOOK_POINTS, RESID_PRE
from artifacts.settings import StageConfig, setting


@dataclass(frozen=True)
class ReplayConfig(StageConfig, AnalysisSettings, GenerationsInput):
    """Replay prompt + completion token ids through TransformerLens; store activations at the best layers,
    and the last-prompt-token vectors of every layer the SAE feature list names."""

    STAGE: ClassVar[str] = "replay-activations"

    generations_path: Path | None = setting(
        None, flag="--generations", identity=False,  # its content is an input of the record
        help=f"Generations parquet (its metadata JSON beside it) [default: OUTPUT_DIR/{GENERATIONS_FILE}].")
    output_dir: Path | None = setting(
        None, identity=False, help="Stage folder; files go to OUTPUT_DIR/activations/ [default: DATA_DIR/phase7_3].")
    model: str | None = setting(
        None, help="Model name or folder [default: the generations' model; another one warns].")
    dtype: str | None = setting(
        None, choices=DTYPE_NAMES, help="Replay dtype [default: the dtype the generations were made with].")
    # Not identity: another device (or batch size, below) changes float32 rounding only, as in
    # one run; a folder may mix them, as before the completion record.
    device: str = setting("auto", choices=DEVICE_CHOICES, identity=False, help="auto: cuda when visible.")
    hook_point: str = setting(
        RESID_PRE, choices=HOOK_POINTS,
        help="resid_pre: input of block L, HF hidden_states[L] (what the earlier phases captured and the "
        "features were selected on); resid_post: its output (GemmaScope's SAE site). Every .npz also keeps the "
        "other site's last-prompt-token vector.")
    activation_format: str = setting(
        ACTIVATION_FORMATS[0], choices=ACTIVATION_FORMATS,
        help="Per-task files: {task_id}_layer_{L}.npz, {task_id}_layer_{L}.safetensors (tensor 'activation', "
        "(1, d_model)), or both.")
    batch_size: int | None = setting(
        None, minimum=1, identity=False,
        help="Sequences per forward, grouped by length [default: 8 for float32 on cuda (4.7x faster there); "
        "else 1: slower batched on CPU, and in bfloat16/float16 batched kernels round differently (~2e-2)].")
    # Not identity: a check of the stored files, which it does not change. `run` skips a finished
    # replay whatever --verify says; `replay-activations --verify N` checks a finished folder.
    verify: int = setting(
        0, minimum=0, metavar="N", identity=False,
        help="Check N sampled tasks against Hugging Face hidden states and report replay fidelity.")

    @property
    def activations_dir(self) -> Path:
        return self.folder / ACTIVATIONS_SUBDIR

    @property
    def task_activations_dir(self) -> Path:
        return self.activations_dir / TASK_ACTIVATIONS_SUBDIR

    def inputs(self) -> list[Path]:
        feature_list = self.feature_list_path()
        return [self.generations, self.generations_metadata, *([feature_list] if feature_list else [])]

    def outputs(self) -> list[Path]:
        return [self.activations_dir]

    def record_dir(self) -> Path:
        return self.folder
