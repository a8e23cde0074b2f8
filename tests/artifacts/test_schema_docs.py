"""data/README.md documents exactly the contract that artifacts/schema defines."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from artifacts import layout
from artifacts.schema import activations, dataset, features, generations

README = Path(__file__).resolve().parents[2] / "data" / "README.md"
# Module constants that are values or choices, not names of a column, key or file.
NOT_NAMES = re.compile(r"^(MODEL_TYPE_|VERDICT_|FINISH_|DEFAULT_|.*_ENV$|.*_SUFFIX$|.*_EXPLANATIONS?$)")


def _sections() -> dict[str, str]:
    """``{heading text: body}`` of every ``##``/``###`` section."""
    parts = re.split(r"^(#{2,3} .*)$", README.read_text(), flags=re.M)
    return {parts[i].lstrip("# ").strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _table_names(heading_start: str) -> list[str]:
    """The backticked names in the first column of the first table of the section whose heading starts so."""
    sections = [body for head, body in _sections().items() if head.startswith(heading_start)]
    assert len(sections) == 1, f"one section headed {heading_start!r} expected in data/README.md"
    rows = [line for line in sections[0].splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def _names(module: ModuleType) -> set[str]:
    """Every string constant of a schema module that names a column, key or file."""
    values = set()
    for attr, value in vars(module).items():
        if attr.isupper() and not NOT_NAMES.match(attr):
            if isinstance(value, str):
                values.add(value)
            elif isinstance(value, dict):
                values.update(v for v in value.values() if isinstance(v, str))
    return values


def test_generations_columns_are_the_documented_ones():
    assert _table_names("`generations.parquet`") == list(generations.COLUMNS)


def test_npz_keys_are_the_documented_ones():
    assert _table_names("`task_activations/{task_id}_layer_{L}.npz`") == list(activations.NPZ_KEYS)


def test_feature_vectors_keys_are_the_documented_ones():
    assert _table_names("`feature_layer_vectors.npz`") == list(activations.FV_KEYS)


def test_feature_score_columns_are_the_documented_ones():
    assert _table_names("`feature_scores.parquet`") == list(features.SCORE_COLUMNS)


@pytest.mark.parametrize(("heading", "columns"), [
    ("`sae_fit.parquet`", features.SAE_FIT_COLUMNS),
    ("`probes.parquet`", features.PROBE_COLUMNS),
    ("`feature_differences.parquet`", features.DIFFERENCE_COLUMNS),
])
def test_features_tables_columns_are_the_documented_ones(heading, columns):
    assert _table_names(heading) == list(columns)


@pytest.mark.parametrize("module", [generations, activations, dataset, features, layout], ids=lambda m: m.__name__)
def test_every_schema_name_is_documented(module):
    text = README.read_text()
    documented = {name for line in text.splitlines() for name in re.findall(r"`([^`]+)`", line)}
    # A name counts as documented inside a longer backticked path or pattern too.
    missing = sorted(n for n in _names(module) if n not in documented and f"/{n}" not in text and f"{n}/" not in text)
    assert not missing, f"data/README.md does not document {missing} from {module.__name__}"
