"""The stages in data-flow order: each one's settings class and entry point.

Named as ``"module:attribute"`` so that listing them imports nothing heavy: a config module
is light (dataclasses), a stage module is imported only when the stage runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from artifacts.settings import StageConfig


@dataclass(frozen=True)
class StageEntry:
    """One stage: its command name, settings class and ``run(config) -> result``."""

    name: str
    config: str
    entry: str

    def config_class(self) -> type[StageConfig]:
        return _load(self.config)

    def run(self, config: StageConfig) -> Any:
        """Run the stage in this process; the result has ``summary() -> str``."""
        return _load(self.entry)(config)


def _load(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


PREPARE_DEMO_MODEL = StageEntry("prepare-demo-model", "demo.config:DemoModelConfig", "demo.stage:run")
# The pipeline, in order: `run` chains these.
PIPELINE = (
    StageEntry("split", "problems.config:SplitConfig", "problems.stage:run"),
    StageEntry("generate", "gen.config:GenerateConfig", "gen.stage:run"),
    StageEntry("replay-activations", "replay.config:ReplayConfig", "replay.stage:run"),
    StageEntry("evaluate", "evaluate.config:EvaluateConfig", "evaluate.stage:run"),
    StageEntry("features", "features.config:FeaturesConfig", "features.stage:run"),
    StageEntry("report", "report.config:ReportConfig", "report.stage:run"),
)
STAGES = {s.name: s for s in (*PIPELINE, PREPARE_DEMO_MODEL)}
