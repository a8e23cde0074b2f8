"""Resolve ``--model`` to something loadable, with its provenance (revision or content hash).

A local checkpoint folder is hashed, so a rerun can tell a changed folder; a Hugging Face hub
id carries its commit hash, read from the cached config when known.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from artifacts.errors import InputError
from artifacts.files import sha256_file


@dataclass(frozen=True)
class ModelSource:
    """``--model`` as given (``name``); ``path`` for loaders (absolute folder or hub id); the hub
    commit hash (``revision``) or a local folder's ``content_hash``."""

    name: str
    path: str
    revision: str | None
    content_hash: str | None


def looks_like_path(model: str) -> bool:
    """True when ``model`` is meant as a file-system path rather than a hub id ``org/name``."""
    return (
        model.startswith(("/", ".", "~"))
        or model.count("/") > 1
        or os.sep != "/" and os.sep in model
        or model.endswith("/")
    )


def folder_hash(folder: str | Path) -> str:
    """sha256 over the relative paths and contents of ``folder``'s files: the weights, config and
    tokenizer, so hidden files (our provenance notes) and ``README.md`` are skipped."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or rel.name == "README.md":
            continue
        digest.update(str(rel).encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def resolve_model(model: str, *, revision: str | None = None) -> ModelSource:
    """Check that ``model`` (a local checkpoint folder or a hub id at ``revision``) exists and describe it.

    Raises:
        InputError: the folder is missing or has no ``config.json``, or the hub id cannot
            be found locally or downloaded.
    """
    local = Path(model).expanduser()
    if local.exists() or looks_like_path(model):
        if not local.is_dir():
            raise InputError(f"--model {model}: model folder not found; pass an existing checkpoint folder or a hub id")
        if not (local / "config.json").is_file():
            raise InputError(f"--model {model}: no config.json in this folder; is it a Hugging Face checkpoint?")
        return ModelSource(model, str(local.resolve()), revision=None, content_hash=folder_hash(local))
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model, revision=revision)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"--model {model}: not a local folder and not found on the Hugging Face hub or in its cache "
            f"({type(exc).__name__}); check the name, log in for gated models (huggingface-cli login), "
            "or pass a local checkpoint folder"
        ) from exc
    return ModelSource(model, model, revision=getattr(config, "_commit_hash", None) or revision, content_hash=None)
