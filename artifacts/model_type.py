"""``--model-type``, declared once for every stage that reads or names the evaluated dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from artifacts.layout import ACTIVATIONS_SUBDIR

from artifacts.schema import dataset as keys
from artifacts.settings import setting


@dataclass(frozen=True)
class ModelTypeSetting:
    """Settings mixin (with a ``StageConfig``): which model made the completions, naming the dataset file."""

    model_type: str = setting(
        keys.MODEL_TYPE_INSTRUCT, choices=keys.MODEL_TYPE_CHOICES,
        help="What made the completions: recorded in metadata.json and naming the dataset "
        f"({keys.DATASET_FILES[keys.MODEL_TYPE_INSTRUCT]} or {keys.DATASET_FILES[keys.MODEL_TYPE_BASE]}); "
        f"{keys.MODEL_TYPE_INSTRUCT_ALIAS} is read as {keys.MODEL_TYPE_INSTRUCT}.")

    def __post_init__(self) -> None:
        # One spelling in the record and the outputs, whichever was given.
        object.__setattr__(self, "model_type", keys.normalize_model_type(self.model_type))
        chained = getattr(super(), "__post_init__", None)
        if chained is not None:
            chained()

    @property
    def dataset_file(self) -> str:
        """``dataset_instruct_temp_0_0.parquet`` or ``dataset_base_temp_0_0.parquet``."""
        return keys.dataset_file_name(self.model_type)


class DatasetInput:
    """Paths mixin (with ``ModelTypeSetting`` and ``dataset_path``/``activations_dir`` fields) of a stage
    that reads the evaluated dataset and the activations beside it."""

    @property
    def dataset(self) -> Path:
        return self.dataset_path or self.layout.phase7_3 / self.dataset_file

    @property
    def activations(self) -> Path:
        return self.activations_dir or self.dataset.parent / ACTIVATIONS_SUBDIR
