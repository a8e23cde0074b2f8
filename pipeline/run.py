"""``run``: every stage in order, each in its own process, skipping those already done.

A stage whose completion record matches what it would run now (:func:`artifacts.records.is_current`)
is skipped without starting a process; any other starts and resumes from its per-task commits.
A fresh interpreter per stage gives back vLLM's memory before TransformerLens loads the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifacts.errors import InputError
from artifacts.layout import Layout
from artifacts.records import PROJECT_ROOT, is_current
from artifacts.settings import StageConfig
from pipeline.options import RunOption, stage_values
from pipeline.stages import PIPELINE, PREPARE_DEMO_MODEL

DEMO_PRESET = "demo"
# The demo finishes on a 2-core CPU in minutes: the first 20 validation problems, at most
# 512 new tokens each, vLLM in eager mode (on the CPU, compilation cost 185-326 s of engine
# start and decoded no faster), and stand-in SAEs (the demo model has no GemmaScope SAEs).
DEMO_VALUES: dict[str, Any] = {"limit": 20, "max_new_tokens": 512, "verify": 4, "enforce_eager": True, "demo_saes": True}
CHILD = (sys.executable, "-m", "pipeline.child")


@dataclass(frozen=True)
class StageTiming:
    name: str
    seconds: float
    ran: bool


def apply_preset(values: Mapping[str, Any], preset: str | None, *, data_dir: Path) -> tuple[dict[str, Any], bool]:
    """The ``run`` values with a preset's filled in (explicit values win), and whether to prepare the demo model."""
    if preset is None:
        return dict(values), False
    if preset != DEMO_PRESET:
        raise InputError(f"--preset {preset!r}: unknown preset (known: {DEMO_PRESET})")
    return {**DEMO_VALUES, "model": Layout(data_dir).demo_model, **values}, values.get("model") is None


def check_sandbox(values: Mapping[str, Any]) -> None:
    """Fail before any model stage when evaluate's bubblewrap sandbox is missing."""
    from evaluate.sandbox import DEFAULT_SANDBOX, INSTALL_HINT, SandboxKind, bwrap_version

    if (values.get("sandbox") or DEFAULT_SANDBOX.value) == SandboxKind.BWRAP.value and bwrap_version() is None:
        raise InputError(f"bwrap: not found on PATH; {INSTALL_HINT} (or pass --sandbox process, NOT isolated)")


def build_configs(values: Mapping[str, Any], options: Mapping[str, RunOption], *,
                  prepare_demo_model: bool = False) -> list[StageConfig]:
    """Each stage's settings for the ``run`` values, in order."""
    configs = [stage.config_class().from_mapping(stage_values(stage.name, options, values)) for stage in PIPELINE]
    if prepare_demo_model:
        demo_config = PREPARE_DEMO_MODEL.config_class()
        configs.insert(0, demo_config(data_dir=values["data_dir"], output_dir=Path(values["model"])))
    return configs


def run_pipeline(configs: Sequence[StageConfig], *, echo: Callable[[str], None] = print,
                 child: Sequence[str] = CHILD) -> list[StageTiming]:
    """Run every stage that is not current, each in its own process; StageFailed at the first failure."""
    # The project is not installed: the child finds it through PYTHONPATH, whatever the working
    # directory that relative paths in the settings are read from.
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    timings = []
    for config in configs:
        if not config.overwrite and is_current(config):
            echo(f"== {config.STAGE}: already done, skipped")
            timings.append(StageTiming(config.STAGE, 0.0, False))
            continue
        echo(f"== {config.STAGE}: running")
        start = time.perf_counter()
        code = subprocess.call([*child, config.STAGE, json.dumps(config.settings())], env=env)
        elapsed = time.perf_counter() - start
        timings.append(StageTiming(config.STAGE, elapsed, True))
        if code != 0:
            raise StageFailed(config.STAGE, code)
        echo(f"== {config.STAGE}: done in {elapsed:.1f}s")
    return timings


class StageFailed(RuntimeError):
    """A stage's process exited with a non-zero code."""

    def __init__(self, stage: str, code: int) -> None:
        super().__init__(f"stage {stage} failed with exit code {code}; fix it and rerun `run` to resume")
        self.stage = stage
        self.code = code
