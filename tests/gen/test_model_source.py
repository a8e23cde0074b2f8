"""--model resolution: clear errors for missing folders, a content hash for local ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from artifacts.errors import InputError
from gen.model_source import folder_hash, looks_like_path, resolve_model


def test_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="model folder not found"):
        resolve_model(str(tmp_path / "nope"))


def test_folder_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_local_folder_is_resolved_and_hashed(tiny_gemma2: Path, tmp_path: Path) -> None:
    source = resolve_model(str(tiny_gemma2))
    assert source.content_hash and source.revision is None and Path(source.path) == tiny_gemma2.resolve()
    copy = tmp_path / "copy"
    shutil.copytree(tiny_gemma2, copy)
    (copy / ".note").write_text("hidden files do not count")
    assert folder_hash(copy) == source.content_hash
    (copy / "generation_config.json").write_text("{}")
    assert folder_hash(copy) != source.content_hash


def test_path_like_names() -> None:
    assert looks_like_path("./m") and looks_like_path("/abs/m") and looks_like_path("a/b/c")
    assert not looks_like_path("google/gemma-2-2b-it")


def test_unknown_hub_id_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # Offline: the hub is unreachable here anyway, and offline mode fails at once instead of retrying.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match="not found on the Hugging Face hub"):
        resolve_model("pva-no-such-org/no-such-model")
