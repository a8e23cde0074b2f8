"""Chain the stages, each in its own process, passing one set of settings through.

Every stage is resumable on its own (atomic commits, per-task files), so ``run`` runs the
stages in order and a rerun after a crash redoes only what is missing. Each model-loading
stage runs in a fresh interpreter so the memory vLLM holds (GPU or CPU) is returned to the
system before TransformerLens loads the model again.

A stage that finished is skipped without starting an interpreter when its completeness key
(:mod:`pipeline.stamps`: its command line, the fingerprints of its inputs and outputs, the
source of the code it runs) is unchanged since it finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artifacts.errors import InputError
from artifacts.layout import (
    ACTIVATIONS_SUBDIR,
    DATASET_FILE,
    DATASET_METADATA_FILE,
    GENERATIONS_FILE,
    GENERATIONS_METADATA_FILE,
    REPORT_SUBDIR,
    Layout,
)
from artifacts.schema.features import FEATURES_SUBDIR
from pipeline.options import RunOption, stage_argv
from pipeline.stamps import Stamp, read_stamp, write_stamp

DEMO_PRESET = "demo"
# The demo finishes on a 2-core CPU in minutes: the first 20 validation problems, at most
# 512 new tokens each, and vLLM in eager mode (on the CPU, compilation cost 185-326 s of
# engine start and gave no faster decoding at this batch size; eager started in 48 s).
# The demo model has no GemmaScope SAEs: the features stage reads it with stand-ins.
DEMO_VALUES: dict[str, Any] = {"limit": 20, "max_new_tokens": 512, "verify": 4, "enforce_eager": True, "demo_saes": True}
# Packages whose source is part of each stage's completeness key.
STAGE_CODE = {
    "generate": ("gen", "problems", "artifacts"),
    "replay-activations": ("replay", "features", "artifacts"),
    "evaluate": ("evaluate", "problems", "artifacts"),
    "features": ("features", "report", "artifacts"),
    "report": ("report", "artifacts"),
}


@dataclass(frozen=True)
class Stage:
    """One step: a ``cli.py`` command line, whether it must run, and what it reads and writes."""

    name: str
    argv: list[str]
    needed: Callable[[], bool] = field(default=lambda: True)
    inputs: tuple[Path, ...] = ()
    outputs: tuple[Path, ...] = ()
    stamped: bool = False


@dataclass(frozen=True)
class StageTiming:
    name: str
    seconds: float
    ran: bool


def apply_preset(values: Mapping[str, Any], preset: str | None, *, data_dir: Path) -> tuple[dict[str, Any], bool]:
    """Fill the `run` values from a named preset; explicit values win.

    Returns:
        The values, and whether the demo model must be prepared (the preset's model was kept).
    """
    values = dict(values)
    if preset is None:
        return values, False
    if preset != DEMO_PRESET:
        raise InputError(f"--preset {preset!r}: unknown preset (known: {DEMO_PRESET})")
    prepare = values.get("model") is None
    for key, value in {**DEMO_VALUES, "model": str(Layout(data_dir).demo_model)}.items():
        if values.get(key) is None:
            values[key] = value
    return values, prepare


def check_sandbox(values: Mapping[str, Any]) -> None:
    """Fail before any model stage when evaluate's bubblewrap sandbox is missing."""
    from evaluate.sandbox import INSTALL_HINT, SandboxKind, bwrap_version

    kind = values.get("sandbox") or SandboxKind.BWRAP.value
    if kind == SandboxKind.BWRAP.value and bwrap_version() is None:
        raise InputError(f"bwrap: not found on PATH; {INSTALL_HINT} (or pass --sandbox process, NOT isolated)")


def build_stages(
    data_dir: Path, values: Mapping[str, Any], options: Mapping[str, RunOption], *, prepare_demo_model: bool = False
) -> list[Stage]:
    """The command lines of every stage, in order, for the `run` values ``values``."""
    layout = Layout(data_dir)
    out = layout.phase7_3
    values = {**values, "data_dir": data_dir}

    def argv(stage: str) -> list[str]:
        return [stage, *stage_argv(stage, options, values)]

    model = values.get("model")
    # A local folder's files are part of the key (a hub id names no local path: None, stable);
    # taken whether or not it exists yet, since prepare-demo-model may create it in this run.
    model_inputs = (Path(model),) if model else ()
    analysis = tuple(Path(values[k]) for k in ("phase2_10_dir", "phase2_5_dir") if values.get(k)) or (
        layout.phase2_10, layout.phase2_5)
    # SAE files named on the command line (LAYER=PATH), and the demo's stand-ins.
    sae_files = tuple(Path(spec.partition("=")[2]) for spec in values.get("sae") or ()) + (layout.demo_saes,)
    stages = []
    if prepare_demo_model:
        stages.append(
            Stage(
                "prepare-demo-model",
                ["prepare-demo-model", "--data-dir", str(data_dir), "--output-dir", str(model), "--no-verify"],
                needed=lambda: not (Path(str(model)) / "config.json").is_file(),
            )
        )
    activations = out / ACTIVATIONS_SUBDIR
    stages += [
        Stage("split", argv("split"), needed=lambda: not layout.problems.is_file()),
        Stage("generate", argv("generate"), inputs=(layout.problems, *model_inputs),
              outputs=(out / GENERATIONS_FILE, out / GENERATIONS_METADATA_FILE), stamped=True),
        Stage("replay-activations", argv("replay-activations"),
              inputs=(out / GENERATIONS_FILE, out / GENERATIONS_METADATA_FILE, *model_inputs, *analysis),
              outputs=(activations,), stamped=True),
        Stage("evaluate", argv("evaluate"),
              inputs=(out / GENERATIONS_FILE, layout.problems, activations, *analysis),
              outputs=(out / DATASET_FILE, out / DATASET_METADATA_FILE), stamped=True),
        Stage("features", argv("features"),
              inputs=(out / DATASET_FILE, activations, *analysis, *sae_files),
              outputs=(out / FEATURES_SUBDIR,), stamped=True),
        Stage("report", argv("report"),
              inputs=(out / DATASET_FILE, out / DATASET_METADATA_FILE, out / GENERATIONS_FILE,
                      out / GENERATIONS_METADATA_FILE, activations, out / FEATURES_SUBDIR),
              outputs=(out / REPORT_SUBDIR,), stamped=True),
    ]
    return stages


def _environment() -> dict[str, str]:
    # The inputs found through environment variables are part of what a stage read.
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("PVA_")}


def _stamp(stage: Stage, root: Path) -> Stamp:
    return Stamp.of(stage.argv, inputs=stage.inputs, outputs=stage.outputs, environment=_environment(),
                    code=STAGE_CODE.get(stage.name, ()), root=root)


def run_pipeline(
    stages: Sequence[Stage],
    *,
    stamps_dir: Path,
    python: Sequence[str] = (sys.executable, "-m", "cli"),
    echo: Callable[[str], None] = print,
) -> list[StageTiming]:
    """Run every needed stage in its own process; stop at the first that fails.

    Args:
        stages: from :func:`build_stages`.
        stamps_dir: where the completeness keys of finished stages are kept.
        python: how to start the CLI in a child process.
        echo: where to print the stage banners.

    Returns:
        The wall time of each stage.

    Raises:
        StageFailed: a stage exited non-zero (its own message is already on stderr).
    """
    root = Path(__file__).resolve().parents[1]
    timings = []
    for stage in stages:
        stamp_path = stamps_dir / f"{stage.name}.json"
        if not stage.needed() or (stage.stamped and read_stamp(stamp_path) == _stamp(stage, root)):
            echo(f"== {stage.name}: already done, skipped")
            timings.append(StageTiming(stage.name, 0.0, False))
            continue
        echo(f"== {stage.name}: {' '.join(stage.argv)}")
        start = time.perf_counter()
        code = subprocess.call([*python, *stage.argv])
        elapsed = time.perf_counter() - start
        timings.append(StageTiming(stage.name, elapsed, True))
        if code != 0:
            stamp_path.unlink(missing_ok=True)
            raise StageFailed(stage.name, code)
        if stage.stamped:
            write_stamp(stamp_path, _stamp(stage, root))
        echo(f"== {stage.name}: done in {elapsed:.1f}s")
    return timings


class StageFailed(RuntimeError):
    """A stage's process exited with a non-zero code."""

    def __init__(self, stage: str, code: int) -> None:
        super().__init__(f"stage {stage} failed with exit code {code}; fix it and rerun `run` to resume")
        self.stage = stage
        self.code = code
