"""Everything one layer's SAE is needed for, done while it is loaded.

For each run (this one, and the comparison run) and each site whose last-prompt vectors it stores
at the layer: the SAE's fit (FVU, L0), keeping the activations of the listed latents and of the
null latents (drawn once per layer from a seed, the same for both runs) from the same encoding;
the null latents' AUROCs for ``passed``; probes for ``passed`` on the raw vectors and on the listed
features. And for each run with ``sequence`` arrays at the layer: the fit on sampled token vectors.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from features.runs import LayerVectors, Run
from features.sae import LoadedSae
from features.tokens import sample_tokens
from stats.auroc import auroc_columns
from stats.null_latents import N_NULL_LATENTS, draw_null_latents
from stats.probe import probe
from stats.sae_fit import SaeFitAccumulator, sae_fit

TOKEN_SEED_STREAM = 2  # seeds: nulls (seed, layer); probes (seed, layer, site, 0|1); tokens (seed, layer, 2)


@dataclass(frozen=True, eq=False)
class SiteActs:
    """One run's activations of a layer's listed latents at one site: ``acts`` (task, k), column ``j`` for
    ``latents[j]`` (ascending); and the null latents' AUROCs for ``passed`` (``1 - x`` for ``failed``)."""

    layer: int
    hook_point: str
    task_ids: np.ndarray
    passed: np.ndarray
    latents: np.ndarray
    acts: np.ndarray
    null_auroc: np.ndarray

    def column(self, feature_idx: int) -> np.ndarray:
        """The activations of latent ``feature_idx``: Float32[ndarray, "task"]."""
        return self.acts[:, int(np.searchsorted(self.latents, feature_idx))]


@dataclass
class Readout:
    """What the layers' SAEs gave, accumulated layer by layer."""

    acts: dict[tuple[str, str, int], SiteActs] = field(default_factory=dict)  # (run, site, layer)
    fits: list[fm.SaeFitRow] = field(default_factory=list)
    probes: list[fm.ProbeRow] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def read_out_layer(loaded: LoadedSae, listed: Sequence[int], runs: Sequence[tuple[str, Run]], *, seed: int,
                   token_vectors: int, out: Readout) -> None:
    """Fit, listed and null activations, probes and token fit of one layer's SAE (module docstring), into ``out``.

    ``token_vectors``: token positions sampled per run (0: every one).
    """
    latents = np.unique(np.asarray(list(listed), dtype=np.int64))
    nulls = draw_null_latents(loaded.sae.d_sae, N_NULL_LATENTS, exclude=latents, seed=(seed, loaded.layer))
    keep = np.r_[latents, nulls]
    for name, run in runs:
        for site_index, site in enumerate(HOOK_POINTS):
            vectors = run.vectors.vectors.get((site, loaded.layer))
            if vectors is not None:
                _read_site(loaded, vectors, run, (name, site_index), latents, keep, seed, out)
        _fit_tokens(loaded, run, name, seed, token_vectors, out)


def _read_site(loaded: LoadedSae, vectors: LayerVectors, run: Run, where: tuple[str, int], latents: np.ndarray,
               keep: np.ndarray, seed: int, out: Readout) -> None:
    """One run and site: the fit on the last-prompt vectors, the kept activations, the probes."""
    name, site_index = where
    layer, site = loaded.layer, vectors.hook_point
    with _timed(out, "sae_fit"):
        fit = sae_fit(vectors.x, loaded.sae, keep_latents=keep)
    out.fits.append(fm.SaeFitRow(name, layer, site, fm.POSITIONS_LAST_PROMPT, fit.n_vectors, fit.fvu, fit.l0))
    passed = run.passed_of(vectors.task_ids)
    listed_acts = np.ascontiguousarray(fit.kept_acts[:, : latents.size])
    with _timed(out, "null_latents"):
        null_auroc = auroc_columns(fit.kept_acts[:, latents.size :], passed)
    out.acts[(name, site, layer)] = SiteActs(layer, site, vectors.task_ids, passed, latents, listed_acts, null_auroc)
    with _timed(out, "probes"):
        for inputs, x, stream in ((fm.INPUTS_RESIDUAL, vectors.x, 0), (fm.INPUTS_LISTED, listed_acts, 1)):
            result = probe(x, passed, seed=(seed, layer, site_index, stream))
            out.probes.append(fm.ProbeRow(name, layer, site, inputs, int(passed.size), result.n_folds, result.auroc,
                                          result.auroc_ci_low, result.auroc_ci_high, result.p_value))


def _fit_tokens(loaded: LoadedSae, run: Run, name: str, seed: int, token_vectors: int, out: Readout) -> None:
    """The fit on sampled token vectors of the run's ``sequence`` arrays at this layer, when it has them."""
    if run.sequence_site is None:
        return
    with _timed(out, "all_tokens"):
        sample = sample_tokens(run.vectors.activations_dir, loaded.layer, sorted(run.passed),
                               n=token_vectors, seed=(seed, loaded.layer, TOKEN_SEED_STREAM))
        if sample is None:
            return
        acc = SaeFitAccumulator(loaded.sae)
        for x in sample.vectors():
            acc.update(x)
        fit = acc.result()
    out.fits.append(fm.SaeFitRow(name, loaded.layer, run.sequence_site, fm.POSITIONS_ALL_TOKENS, fit.n_vectors,
                                 fit.fvu, fit.l0))


@contextmanager
def _timed(out: Readout, step: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        out.seconds[step] += time.perf_counter() - start
