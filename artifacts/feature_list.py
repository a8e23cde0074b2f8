"""The SAE analysis' feature list and the best layers it names.

Accepted files, in the first folder that has one (Phase 2.10, then Phase 2.5):
``top_20_features.json`` (entries ``{"feature_idx", "layer", ...}``) or the later
``top_20_latents.json`` (``{"latent_idx", "layer", ...}``); both hold
``{"correct": [...], "incorrect": [...]}`` sorted best first. The settings that find the list
are declared once here, as mixins of the stage configs (:class:`AnalysisDirs`, :class:`AnalysisSettings`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from artifacts.errors import InputError
from artifacts.layout import PHASE2_5_ENV, PHASE2_10_ENV
from artifacts.schema import dataset as keys
from artifacts.settings import setting

FILE_NAMES = (("top_20_features.json", "feature_idx"), ("top_20_latents.json", "latent_idx"))


@dataclass(frozen=True)
class ListedFeature:
    """One entry of a top-20 list: a GemmaScope SAE latent at a layer, ranked within its group."""

    group: str  # "correct" (fires on passing code) or "incorrect" (fires on failing code)
    rank: int  # 0 = best of its group
    layer: int
    feature_idx: int


GROUPS = ("correct", "incorrect")


@dataclass(frozen=True)
class BestLayers:
    """Best correct/incorrect features and the layers to extract (sorted, unique)."""

    correct_layer: int | None
    incorrect_layer: int | None
    correct_feature_idx: int | None
    incorrect_feature_idx: int | None
    extraction_layers: tuple[int, ...]
    source: str
    # Every layer any listed feature sits on (empty when the layers came from --layers alone).
    listed_layers: tuple[int, ...] = ()

    def to_metadata(self) -> dict:
        """The ``best_layers`` block of the downstream metadata, plus layers and source."""
        best = (self.correct_layer, self.incorrect_layer, self.correct_feature_idx, self.incorrect_feature_idx)
        return {keys.BEST_LAYERS: dict(zip(keys.BEST_LAYERS_FIELDS, best)),
                keys.EXTRACTION_LAYERS: list(self.extraction_layers), keys.BEST_LAYERS_SOURCE: self.source}


def parse_layers(spec: str) -> tuple[int, ...]:
    """Parse ``"16,19"`` into ``(16, 19)`` (sorted, unique, non-negative)."""
    try:
        layers = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError as exc:
        raise InputError(f"--layers {spec!r}: expected comma-separated integers such as 16,19") from exc
    if not layers:
        raise InputError(f"--layers {spec!r}: no layer given")
    if layers[0] < 0:
        raise InputError(f"--layers {spec!r}: layers are 0-indexed and cannot be negative")
    return tuple(layers)


def read_best_layers(path: str | Path) -> BestLayers:
    """Read one ``top_20_features.json`` / ``top_20_latents.json`` file."""
    features = read_feature_list(path)
    (correct,) = (f for f in features if f.rank == 0 and f.group == "correct")
    (incorrect,) = (f for f in features if f.rank == 0 and f.group == "incorrect")
    return BestLayers(correct.layer, incorrect.layer, correct.feature_idx, incorrect.feature_idx,
                      tuple(sorted({correct.layer, incorrect.layer})), str(Path(path)),
                      tuple(sorted({f.layer for f in features})))


def read_feature_list(path: str | Path) -> list[ListedFeature]:
    """Every feature of one top-20 file, ``correct`` then ``incorrect``, best first within each."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    idx_key = dict(FILE_NAMES).get(path.name, "feature_idx")
    features = []
    for group in GROUPS:
        entries = data.get(group) if isinstance(data, dict) else None
        if not entries or not isinstance(entries, list):
            raise InputError(f"{path}: missing or empty {group!r} list")
        for rank, entry in enumerate(entries):
            # Either index key is accepted in either file; the file name's own is tried first.
            key = next((k for k in (idx_key, *dict(FILE_NAMES).values()) if k in entry), None)
            if not isinstance(entry, dict) or "layer" not in entry or key is None:
                raise InputError(f"{path}: {group}[{rank}] needs 'layer' and 'feature_idx' (or 'latent_idx')")
            features.append(ListedFeature(group, rank, int(entry["layer"]), int(entry[key])))
    return features


def find_feature_list(folders: Sequence[str | Path]) -> Path | None:
    """The first top-20 file in ``folders`` (Phase 2.10, then 2.5), or None."""
    candidates = (Path(folder) / name for folder in folders for name, _ in FILE_NAMES)
    return next((c for c in candidates if c.is_file()), None)


def find_best_layers(folders: Sequence[str | Path]) -> BestLayers:
    """Best layers from the first folder holding a top-20 file (Phase 2.10, then 2.5)."""
    found = find_feature_list(folders)
    if found is None:
        tried = ", ".join(str(Path(f)) for f in folders)
        raise InputError(f"no top_20_features.json or top_20_latents.json in {tried}; "
                         "set PVA_PHASE2_10_DIR / PVA_PHASE2_5_DIR or pass --layers")
    return read_best_layers(found)


def resolve_layers(folders: Sequence[str | Path], layers: str | None) -> BestLayers:
    """Best layers from the analysis files, ``--layers`` overriding the extraction set.

    With ``layers`` given and no analysis file, the best-feature fields are ``None``.
    """
    if not layers:
        return find_best_layers(folders)
    override = parse_layers(layers)
    try:
        found = find_best_layers(folders)
    except InputError:
        return BestLayers(None, None, None, None, override, "--layers")
    return replace(found, extraction_layers=override, source=f"--layers (best features from {found.source})")


def check_layers(layers: Sequence[int], n_layers: int, model: str) -> None:
    """Raise a clear error when a layer is outside a model with ``n_layers`` layers."""
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise InputError(f"layer(s) {bad} outside model {model}, which has {n_layers} layers (0..{n_layers - 1}); "
                         "pass --layers with valid layers")


@dataclass(frozen=True)
class AnalysisDirs:
    """Settings mixin (with a ``StageConfig``) of a stage that reads the SAE analysis' feature list.

    The folders are where to look, not part of the output's identity; the file found
    (:meth:`feature_list_path`) is an input, fingerprinted by the completion record.
    """

    phase2_10_dir: Path | None = setting(
        None, identity=False,
        help=f"Folder with Phase 2.10 top_20_features.json [default: ${PHASE2_10_ENV} or DATA_DIR/phase2_10].")
    phase2_5_dir: Path | None = setting(
        None, identity=False,
        help="Folder with Phase 2.5 top_20_features.json, used when Phase 2.10 has none "
        f"[default: ${PHASE2_5_ENV} or DATA_DIR/phase2_5].")

    @property
    def analysis_folders(self) -> list[Path]:
        """The folders searched for the feature list, in priority order."""
        layout = self.layout  # type: ignore[attr-defined]  (StageConfig's)
        return [self.phase2_10_dir or layout.phase2_10, self.phase2_5_dir or layout.phase2_5]

    def feature_list_path(self) -> Path | None:
        """The feature list these settings find, or None."""
        return find_feature_list(self.analysis_folders)


@dataclass(frozen=True)
class AnalysisSettings(AnalysisDirs):
    """:class:`AnalysisDirs` plus ``--layers``, which overrides the layers the list names."""

    layers: str | None = setting(
        None, metavar="L1,L2", help="Layers to extract, overriding the SAE analysis (0-indexed, e.g. 16,19).")

    def __post_init__(self) -> None:
        if self.layers is not None:
            parse_layers(self.layers)

    def best_layers(self) -> BestLayers:
        """The best layers of the feature list, ``--layers`` overriding the extraction set."""
        return resolve_layers(self.analysis_folders, self.layers)
