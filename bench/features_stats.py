"""Time and peak memory of the features stage's statistics at Gemma-2-2B size, on synthetic data.

``python -m bench.features_stats [--tasks 388] [--layers 14] [--token-vectors 2048] ...``

What one run of the stage computes, with random arrays in place of the files:

- per layer (14), one full JumpReLU SAE of 16384 latents over d_model 2304 (``W_enc`` and
  ``W_dec`` 151 MB each), drawn at run time like the demo's stand-ins, its threshold set so that
  ~70 latents fire per vector as in GemmaScope (sparsity decides the decoding cost; the draw,
  in place of reading GemmaScope's ``params.npz``, is timed apart as ``sae_draw``);
- per layer x site (resid_pre, resid_post): the SAE fit (FVU, L0) on the 388 last-prompt-token
  vectors, keeping the activations of the listed latents and of 1000 null latents
  (``sae_fit``); the null latents' AUROCs and each listed feature's percentile among them
  (``null_latents``); two probes, on the raw vectors and on the layer's listed features
  (``probes``: out-of-fold AUROC, 1000-resample interval, per-fold permutation p-value);
- over the 40 features x 2 sites: AUROC with a 1000-resample interval (``bootstrap``),
  10,000-permutation p-values (``permutation``), Benjamini-Hochberg q-values (``bh``), and the
  paired difference against a second run (``paired``, as ``--compare-activations`` does);
- with ``--token-vectors N``: the SAE fit on N token vectors at each of 2 best layers x 2
  sites (``sae_fit_tokens``; the ``all_tokens`` rows of ``sae_fit.parquet``).

The vectors are anisotropic (a shared mean, 64 factors of decaying variance, noise) with a
weak direction tied to the outcome, so the residual probes meet realistic fits. Wall times
depend on what else runs: the load average is printed before and after, and each step's CPU
time (all its threads) beside its wall time; on an idle 2-core machine a step's wall time is
about its CPU time where it runs single-threaded (probes, statistics) and about half of it in
the multi-threaded matrix products (SAE fit). Peak memory is the process's maximum resident
set (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np

from bench.table import format_table
from features.standin_sae import standin_jumprelu_sae
from stats.auroc import auroc_columns
from stats.bootstrap import bootstrap_auroc_columns
from stats.multiple_testing import bh_q_values
from stats.null_latents import N_NULL_LATENTS, draw_null_latents, null_percentile
from stats.paired import paired_auroc_difference
from stats.permutation import permutation_p_values
from stats.probe import probe
from stats.sae_fit import JumpReluSae, encode, sae_fit

SITES = ("resid_pre", "resid_post")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m bench.features_stats", description=__doc__)
    parser.add_argument("--tasks", type=int, default=388)
    parser.add_argument("--layers", type=int, default=14)
    parser.add_argument("--features", type=int, default=40, help="listed features over all layers")
    parser.add_argument("--d-model", type=int, default=2304)
    parser.add_argument("--d-sae", type=int, default=16384)
    parser.add_argument("--null-latents", type=int, default=N_NULL_LATENTS)
    parser.add_argument("--permutations", type=int, default=10_000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--token-vectors", type=int, default=0, help="all-token SAE fit: vectors per best layer x site")
    parser.add_argument("--pass-rate", type=float, default=0.35)
    parser.add_argument("--l0", type=float, default=70, help="active latents per vector (GemmaScope 16k: ~70); 0: half")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    rng = np.random.default_rng(args.seed)
    passed = rng.random(args.tasks) < args.pass_rate
    layers = list(range(10, 10 + args.layers))
    listed = _listed_features(layers, args.features, args.d_sae, rng)  # layer -> (latents, "correct" flags)
    seconds: dict[str, float] = defaultdict(float)
    feature_acts, feature_positive, feature_names = [], [], []
    sae_rows, token_l0 = [], []
    start, cpu_start = time.perf_counter(), time.process_time()

    for layer in layers:
        vectors = {
            site: _vectors(args.tasks, args.d_model, passed, np.random.default_rng((args.seed, layer, i)))
            for i, site in enumerate(SITES)
        }
        with _timed(seconds, "sae_draw"):
            sae = _sae(args, layer, vectors[SITES[0]])
        latents, correct = listed[layer]
        nulls = draw_null_latents(args.d_sae, args.null_latents, exclude=latents, seed=(args.seed, layer))
        keep = np.r_[latents, nulls]
        for site in SITES:
            x = vectors[site]
            with _timed(seconds, "sae_fit"):
                fit = sae_fit(x, sae, keep_latents=keep)
            sae_rows.append((layer, site, fit.n_vectors, fit.fvu, fit.l0))
            acts = fit.kept_acts.astype(np.float64)
            listed_acts, null_acts = acts[:, : latents.size], acts[:, latents.size :]
            positive = np.where(correct[None, :], passed[:, None], ~passed[:, None])
            with _timed(seconds, "null_latents"):
                null_auroc = auroc_columns(null_acts, passed)  # for "passed"; 1 - it for "failed"
                observed = auroc_columns(listed_acts, positive)
                for j, is_correct in enumerate(correct):
                    null_percentile(observed[j], null_auroc if is_correct else 1 - null_auroc)
            with _timed(seconds, "probes"):
                probe(x, passed, seed=(args.seed, layer, 0), n_bootstrap=args.bootstrap)
                probe(listed_acts, passed, seed=(args.seed, layer, 1), n_bootstrap=args.bootstrap)
            feature_acts.append(listed_acts)
            feature_positive.append(positive)
            feature_names += [(layer, site, int(i)) for i in latents]
        if args.token_vectors and layer in layers[:2]:  # the 2 best layers
            for site in SITES:
                tokens = _vectors(args.token_vectors, args.d_model, rng.random(args.token_vectors) < 0.5, rng)
                with _timed(seconds, "sae_fit_tokens"):
                    token_l0.append(sae_fit(tokens, sae).l0)
        del sae  # one layer's SAE at a time

    scores = np.hstack(feature_acts)
    positive = np.hstack(feature_positive)
    with _timed(seconds, "bootstrap"):
        bootstrap_auroc_columns(scores, positive, n_resamples=args.bootstrap, seed=args.seed)
    with _timed(seconds, "permutation"):
        p = permutation_p_values(scores, positive, n_permutations=args.permutations, seed=args.seed)
    with _timed(seconds, "bh"):
        bh_q_values(p)
    other = scores + rng.standard_normal(scores.shape) * scores.std(axis=0)  # a second run on the same tasks
    other_passed = np.where(rng.random(args.tasks) < 0.8, passed, rng.random(args.tasks) < args.pass_rate)
    other_positive = np.where(positive == passed[:, None], other_passed[:, None], ~other_passed[:, None])
    with _timed(seconds, "paired"):
        for j in range(scores.shape[1]):
            paired_auroc_difference(
                scores[:, j],
                positive[:, j],
                other[:, j],
                other_positive[:, j],
                n_resamples=args.bootstrap,
                seed=args.seed,
            )
    total = time.perf_counter() - start

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    counts = {
        "sae_draw": f"{len(layers)} SAEs {args.d_sae} x {args.d_model}",
        "sae_fit": f"{len(layers) * len(SITES)} x {args.tasks} vectors, keeping {keep.size} latents",
        "sae_fit_tokens": f"{min(2, len(layers)) * len(SITES)} x {args.token_vectors} vectors",
        "null_latents": f"{len(layers) * len(SITES)} x {args.null_latents} null AUROCs",
        "probes": f"{len(layers) * len(SITES)} x (residual {args.d_model}-d + listed)",
        "bootstrap": f"{scores.shape[1]} features x {args.bootstrap}",
        "permutation": f"{scores.shape[1]} features x {args.permutations}",
        "bh": f"{scores.shape[1]} p-values",
        "paired": f"{scores.shape[1]} features x {args.bootstrap}",
    }
    rows = [
        {
            "step": step,
            "wall_s": seconds[step],
            "cpu_s": seconds[step + "/cpu"],
            "share": seconds[step] / total,
            "what": counts[step],
        }
        for step in counts
        if step in seconds
    ]
    cpu_total = time.process_time() - cpu_start
    peak = f"peak RSS {peak_mb:.0f} MB"
    rows.append({"step": "total", "wall_s": total, "cpu_s": cpu_total, "share": 1.0, "what": peak})
    stage = total - seconds["sae_draw"]
    load_after = os.getloadavg()
    print(
        f"\n== features statistics: {args.tasks} tasks, {len(layers)} layers x {len(SITES)} sites, "
        f"{scores.shape[1]} feature x site tests, d_model {args.d_model}, d_sae {args.d_sae}"
    )
    print(format_table(rows))
    print(f"without the SAE draws (reading GemmaScope files instead): {stage:.1f} s; peak RSS {peak_mb:.0f} MB")
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
        f"{load_after[2]:.2f} on {os.cpu_count()} CPUs"
    )
    fvu, l0 = np.array([r[3] for r in sae_rows]), np.array([r[4] for r in sae_rows])
    print(
        f"random SAEs: FVU {fvu.min():.3g}-{fvu.max():.3g} (they fit nothing, as they should not), "
        f"L0 {l0.min():.0f}-{l0.max():.0f} on the last-prompt vectors"
        + (f", {min(token_l0):.0f}-{max(token_l0):.0f} on the token vectors" if token_l0 else "")
    )
    return rows


def _sae(args: argparse.Namespace, layer: int, calibration: np.ndarray) -> JumpReluSae:
    """The layer's random SAE: the demo's stand-in, its threshold raised so that ~``--l0``
    latents fire per vector as in GemmaScope (0 keeps the stand-in's threshold 0, ~half firing)."""
    sae = standin_jumprelu_sae(args.d_model, args.d_sae, seed=(args.seed, layer))
    if not args.l0:
        return sae
    pre = encode(sae, calibration[:64])  # threshold 0: the positive pre-activations
    level = np.quantile(pre, 1 - args.l0 / args.d_sae)
    return JumpReluSae(sae.W_enc, sae.b_enc, np.full(args.d_sae, level, dtype=np.float32), sae.W_dec, sae.b_dec)


def _listed_features(
    layers: list[int], n: int, d_sae: int, rng: np.random.Generator
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``n`` features dealt round-robin over the layers, about half "correct", half "incorrect"."""
    out = {}
    for i, layer in enumerate(layers):
        k = len(range(i, n, len(layers)))
        latents = np.sort(rng.choice(d_sae, size=k, replace=False))
        out[layer] = (latents, rng.random(k) < 0.5)
    return out


def _vectors(n: int, d: int, passed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Residual-stream-like float32 vectors: a shared mean, 64 decaying factors, noise, and a weak
    direction along the outcome."""
    factors = rng.standard_normal((n, 64)) * (np.arange(1, 65) ** -0.7) * 10
    x = factors @ rng.standard_normal((64, d)) + rng.standard_normal((n, d)) + 3 * rng.standard_normal(d)
    x += 0.5 * np.outer(passed - passed.mean(), rng.standard_normal(d)) / np.sqrt(d) * 8
    return x.astype(np.float32)


@contextmanager
def _timed(seconds: dict[str, float], step: str):
    """Add the step's wall time to ``seconds[step]`` and its CPU time (all threads) to ``seconds[step + "/cpu"]``."""
    start, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        seconds[step] += time.perf_counter() - start
        seconds[step + "/cpu"] += time.process_time() - cpu


if __name__ == "__main__":
    main()
