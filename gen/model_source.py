"""Resolve ``--model`` to something loadable, with its provenance (revision or content hash).

A model is either a local checkpoint folder (hashed, so a rerun can tell a changed folder)
or a Hugging Face hub id (its commit hash, read from the cached config when known).
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
    """Where a model comes from.

    Attributes:
        name: ``--model`` as given (recorded in the metadata).
        path: what to pass to loaders: an absolute folder path or the hub id.
        is_local: whether ``path`` is a local folder.
        revision: the hub commit hash, when known; ``None`` for local folders.
        content_hash: sha256 over a local folder's files; ``None`` for hub models.
    """

    name: str
    path: str
    is_local: bool
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
    """sha256 over the relative paths and contents of every non-hidden file in ``folder``.

    Hidden files (such as our own provenance notes) and ``README.md`` are skipped, so the
    hash names the weights, config and tokenizer only.
    """
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or rel.name == "README.md":
            continue
        digest.update(str(rel).encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def resolve_model(model: str, *, revision: str | None = None, hash_local: bool = True) -> ModelSource:
    """Check that ``model`` exists and describe it.

    Args:
        model: a local checkpoint folder or a Hugging Face hub id.
        revision: hub branch, tag or commit to use (ignored for local folders).
        hash_local: compute ``content_hash`` for local folders (reads every file once).

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
        return ModelSource(
            name=model,
            path=str(local.resolve()),
            is_local=True,
            revision=None,
            content_hash=folder_hash(local) if hash_local else None,
        )
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model, revision=revision)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"--model {model}: not a local folder and not found on the Hugging Face hub or in its cache "
            f"({type(exc).__name__}); check the name, log in for gated models (huggingface-cli login), "
            "or pass a local checkpoint folder"
        ) from exc
    return ModelSource(
        name=model,
        path=model,
        is_local=False,
        revision=getattr(config, "_commit_hash", None) or revision,
        content_hash=None,
    )
