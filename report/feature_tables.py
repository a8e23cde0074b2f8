"""The feature section's tables beside the scores: the verdict's rules, the SAEs' fit, the probes, and
this run against the comparison run (``sae_fit.parquet``, ``probes.parquet``,
``feature_differences.parquet``; columns in ``artifacts/schema/features.py``). Pure text."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from report.fmt import NA

NEURONPEDIA = "https://www.neuronpedia.org/gemma-2-2b/{layer}-gemmascope-res-16k/{index}"


def neuronpedia_url(layer: int, index: int) -> str:
    """The feature's Neuronpedia page (GemmaScope 16k residual SAE of Gemma-2-2B at ``layer``)."""
    return NEURONPEDIA.format(layer=int(layer), index=int(index))


def num(value, spec: str = ".2f") -> str:
    """A number, or "n/a" for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return format(value, spec)


def row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def rules_lines(rules: dict) -> list[str]:
    """The verdict's rules, with the numbers the features stage used (metadata ``verdict_rules``)."""
    alpha, bound, margin = rules[fm.RULE_ALPHA], rules[fm.RULE_FVU_BOUND], rules[fm.RULE_FVU_MARGIN]
    reference, ceiling = rules.get(fm.RULE_REFERENCE), rules.get(fm.RULE_FVU_CEILING)
    fit = (f"FVU <= the FVU of {reference} (the reference run) at the same layer and site + {margin}, and never "
           f"above {ceiling}" if reference
           else f"FVU <= {bound} (no reference run given; with the base model's run, FVU <= its FVU + {margin})")
    return [
        "Verdict rules, for each listed feature at each site (the first that applies decides):", "",
        f"1. **cannot tell** when the feature was not scored, a class has fewer than {rules[fm.RULE_MIN_CLASS]} "
        "tasks, or the layer's SAE does not fit this run's last-prompt vectors at the site. It fits when "
        f"{fit}.",
        f"2. **carries over** when q < {alpha} (Benjamini-Hochberg across all listed features x sites) and the "
        "AUROC's 95% interval lies above 0.5.",
        f"3. **does not carry over** when q >= {alpha}.",
        f"4. **cannot tell** otherwise (q < {alpha} while the interval reaches 0.5).", "",
    ]


def fit_table(fits: pd.DataFrame, compare_label: str | None) -> list[str]:
    """FVU and L0 of each layer's SAE per positions and site, this run beside the comparison run."""
    if fits.empty:
        return []
    runs = [(fm.RUN_THIS, "")] + ([(fm.RUN_COMPARE, f" {compare_label}")] if compare_label else [])
    head = ["layer", "positions"] + [f"`{site}`{label}: FVU, L0 (vectors)" for _, label in runs for site in HOOK_POINTS]
    out = ["SAE fit. FVU: share of the vectors' variance around their mean that the SAE's reconstruction leaves "
           "unexplained (0 perfect, 1 no better than the mean); L0: active latents per vector. `last_prompt`: the "
           "vectors the features are scored on; `all_tokens`: a seeded sample of the stored token vectors (first "
           "position left out), at the site replay stored them at.", "", row(head), row(["---"] * len(head))]
    order = {fm.POSITIONS_LAST_PROMPT: 0, fm.POSITIONS_ALL_TOKENS: 1}
    keys = sorted({(int(r.layer), r.positions) for r in fits.itertuples()}, key=lambda k: (k[0], order[k[1]]))
    for layer, positions in keys:
        cells = [str(layer), positions]
        for run, _ in runs:
            for site in HOOK_POINTS:
                match = fits[(fits["run"] == run) & (fits["layer"] == layer) & (fits["positions"] == positions)
                             & (fits["hook_point"] == site)]
                cells.append("-" if match.empty else _fit_cell(match.iloc[0]))
        out.append(row(cells))
    return out + [""]


def _fit_cell(r) -> str:
    return f"{num(r['fvu'], '.3g')}, {num(r['l0'], '.1f')} ({int(r['n_vectors'])})"


def probe_table(probes: pd.DataFrame, compare_label: str | None) -> list[str]:
    """Out-of-fold AUROC [95% CI] and p-value of the dense probes on the residual and on the listed features."""
    if probes.empty:
        return []
    runs = [(fm.RUN_THIS, "")] + ([(fm.RUN_COMPARE, f" {compare_label}")] if compare_label else [])
    head = ["layer", "site"] + [f"{inputs}{label} AUROC [95% CI], p" for _, label in runs
                                for inputs in (fm.INPUTS_RESIDUAL, fm.INPUTS_LISTED)]
    out = ["Probes for `passed` (cross-validated logistic regression, standardized, L2; out-of-fold AUROC, "
           "bootstrap interval, permutation p-value): on the residual vectors and on the layer's listed features.",
           "", row(head), row(["---"] * len(head))]
    keys = sorted({(int(r.layer), r.hook_point) for r in probes.itertuples()},
                  key=lambda k: (k[0], HOOK_POINTS.index(k[1])))
    for layer, site in keys:
        group = probes[(probes["layer"] == layer) & (probes["hook_point"] == site)]
        cells = [str(layer), site]
        for run, _ in runs:
            for inputs in (fm.INPUTS_RESIDUAL, fm.INPUTS_LISTED):
                r = group[(group["run"] == run) & (group["inputs"] == inputs)]
                cells.append("-" if r.empty else _probe_cell(r.iloc[0]))
        out.append(row(cells))
    return out + [""]


def _probe_cell(r) -> str:
    if math.isnan(r["auroc"]):
        return f"{NA} (< 2 tasks in a class)"
    return f"{r['auroc']:.2f} [{r['auroc_ci_low']:.2f}, {r['auroc_ci_high']:.2f}], p {num(r['p_value'], '.2g')}"


def difference_table(differences: pd.DataFrame, site: str, label: str, compare_label: str, top: int) -> list[str]:
    """The first ``top`` features of each list at ``site``: AUROC here, there, and the paired difference."""
    rows = differences[(differences["hook_point"] == site) & (differences["rank"] < top)]
    rows = rows.sort_values(["group", "rank"])
    head = ["feature", "layer", "latent", "tasks", f"AUROC {label}", f"AUROC {compare_label}",
            "difference [95% paired CI]"]
    out = [f"{label} beside {compare_label} at `{site}`, on the tasks both hold (tasks resampled once for both "
           "runs):", "", row(head), row(["---"] * len(head))]
    for _, r in rows.iterrows():
        diff = (NA if math.isnan(r["auroc_difference"]) else
                f"{r['auroc_difference']:+.2f} [{r['difference_ci_low']:+.2f}, {r['difference_ci_high']:+.2f}]")
        out.append(row([f"{r['group']} #{r['rank'] + 1}", str(r["layer"]), str(r["feature_idx"]),
                        str(r["n_shared_tasks"]), num(r["auroc_this"]), num(r["auroc_compare"]), diff]))
    return out + ["", f"Every feature x site is in `{fm.FEATURES_SUBDIR}/{fm.DIFFERENCES_FILE}`.", ""]
