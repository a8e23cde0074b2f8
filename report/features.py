"""The report's SAE-feature section: do the base model's PVA features separate this run's outcomes?

Reads what ``python cli.py features`` wrote (``phase7_3/features/``: ``features_metadata.json``,
``feature_scores.parquet``, ``sae_fit.parquet``, ``probes.parquet``, and with a comparison run
``compare_feature_scores.parquet`` and ``feature_differences.parquet``; keys and columns in
``artifacts/schema/features.py``) and renders the verdict's rules and one verdict sentence per
best feature, a table of the top listed features (best correct and best incorrect first, each
linked to its Neuronpedia page), the SAEs' fit, the probes, this run beside the comparison run,
the stand-in and skipped-layer notes, and plots of every feature's AUROC with its 95 % interval
and of the paired differences. Nothing here recomputes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from artifacts.files import read_optional_json
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from report import feature_tables as ft
from report.config import FEATURES_DIFFERENCE_PLOT, FEATURES_PLOT
from report.fmt import NA
from report.plots import SERIES_COLORS, save_figure

TOP_PER_GROUP = 5  # rows of the table per group; every row is in feature_scores.parquet
VERDICT_MARKS = {fm.VERDICT_CARRIES_OVER: "\u2713", fm.VERDICT_DOES_NOT: "\u2717", fm.VERDICT_CANNOT_TELL: "?"}


@dataclass(frozen=True)
class FeatureTables:
    """What the features stage wrote (the comparison's tables None without one)."""

    scores: pd.DataFrame
    fits: pd.DataFrame
    probes: pd.DataFrame
    compare: pd.DataFrame | None
    differences: pd.DataFrame | None


@dataclass(frozen=True)
class FeaturesSection:
    """Rendered section: markdown lines for report.md, console lines, and the files written."""

    markdown: tuple[str, ...]
    console: tuple[str, ...]
    files: tuple[Path, ...]


def features_section(features_dir: Path, output_dir: Path) -> FeaturesSection | None:
    """Render the section when ``features_metadata.json`` exists in ``features_dir``, else None.

    Writes ``FEATURES_PLOT`` (and with a comparison ``FEATURES_DIFFERENCE_PLOT``) into
    ``output_dir``, removing stale ones when there is nothing to show.
    """
    features_dir, output_dir = Path(features_dir), Path(output_dir)
    meta = read_optional_json(features_dir / fm.FEATURES_METADATA_FILE)
    plot_path, diff_path = output_dir / FEATURES_PLOT, output_dir / FEATURES_DIFFERENCE_PLOT
    tables = _read_tables(features_dir, meta) if meta is not None else None
    stale = [plot_path, diff_path] if tables is None else [diff_path] if tables.differences is None else []
    for path in stale:
        path.unlink(missing_ok=True)
    if tables is None:
        return None
    label = Path(str(meta.get(fm.MODEL))).name if meta.get(fm.MODEL) else "this run"
    compare_label = meta[fm.COMPARE].get(fm.COMPARE_LABEL) if tables.compare is not None else None
    files = [plot_features(tables.scores, tables.compare, plot_path, label=label, compare_label=compare_label)]
    if tables.differences is not None:
        files.append(plot_differences(tables.differences, diff_path, label=label, compare_label=compare_label))
    md = _markdown(meta, tables, label=label, compare_label=compare_label)
    return FeaturesSection(tuple(md), tuple(_console(meta, tables.scores)), tuple(files))


def _read_tables(features_dir: Path, meta: dict) -> FeatureTables | None:
    """The stage's tables, or None without a score table (an older or interrupted run)."""
    scores_path = features_dir / fm.FEATURE_SCORES_FILE
    if not scores_path.is_file():
        return None
    compare_path, differences_path = features_dir / fm.COMPARE_SCORES_FILE, features_dir / fm.DIFFERENCES_FILE
    with_compare = bool(meta.get(fm.COMPARE)) and compare_path.is_file()
    return FeatureTables(
        scores=pd.read_parquet(scores_path),
        fits=_read_or_empty(features_dir / fm.SAE_FIT_FILE, fm.SAE_FIT_COLUMNS),
        probes=_read_or_empty(features_dir / fm.PROBES_FILE, fm.PROBE_COLUMNS),
        compare=pd.read_parquet(compare_path) if with_compare else None,
        differences=pd.read_parquet(differences_path) if with_compare and differences_path.is_file() else None,
    )


def _read_or_empty(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=list(columns))


# ---- values ---------------------------------------------------------------------------------


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _auroc_ci(row) -> str:
    if row is None or not row["scored"]:
        return "not scored"
    auroc, low, high = (_num(row[k]) for k in ("auroc", "auroc_ci_low", "auroc_ci_high"))
    if auroc is None:
        return f"{NA} ({_small_class(row)})"
    return f"{auroc:.2f} [{low:.2f}, {high:.2f}]"


def _small_class(row) -> str:
    name = "passed" if int(row["n_passed"]) <= int(row["n_failed"]) else "failed"
    return f"fewer than 2 {name} tasks"


def _frac(value) -> str:
    v = _num(value)
    return NA if v is None else f"{100 * v:.0f}%"


def _linked(row, text: str) -> str:
    return f"[{text}]({ft.neuronpedia_url(row['layer'], row['feature_idx'])})"


def _verdict_sentence(row) -> str:
    """The verdict in words, why, and the numbers it rests on."""
    text = f"**{row['verdict']}** ({row['verdict_reason']})"
    if row["scored"] and _num(row["auroc"]) is not None:
        text += (f"; AUROC {_auroc_ci(row)}, p {ft.num(row['p_value'], '.2g')}, q {ft.num(row['q_value'], '.2g')}, "
                 f"null percentile {ft.num(row['null_percentile'], '.0f')} (among random latents)")
    elif row["scored"]:
        text += f"; AUROC {_auroc_ci(row)}"
    return text


def _ordered(scores: pd.DataFrame, hook: str) -> pd.DataFrame:
    """One hook point's rows, best correct and best incorrect first, then each group by rank."""
    rows = scores[scores["hook_point"] == hook].copy()
    rows["_order"] = np.where(rows["rank"] == 0, rows["group"].map({"correct": 0, "incorrect": 1}), 2)
    rows["_group"] = rows["group"].map({"correct": 0, "incorrect": 1})
    return rows.sort_values(["_order", "_group", "rank"]).drop(columns=["_order", "_group"])


def _lookup(scores: pd.DataFrame | None, row, hook: str):
    if scores is None:
        return None
    match = scores[(scores["group"] == row["group"]) & (scores["rank"] == row["rank"]) & (scores["hook_point"] == hook)]
    return None if match.empty else match.iloc[0]


def _compare_cell(compare: pd.DataFrame | None, row) -> str:
    # The comparison run's primary site when it has it, else the other one (said in the cell).
    for hook in HOOK_POINTS:
        other = _lookup(compare, row, hook)
        if other is not None and other["scored"]:
            return f"{_auroc_ci(other)} ({hook})"
    other = _lookup(compare, row, HOOK_POINTS[0])
    return f"not scored ({other['not_scored_reason']})" if other is not None else "not scored"


# ---- markdown --------------------------------------------------------------------------------


def _markdown(meta: dict, tables: FeatureTables, *, label: str, compare_label: str | None) -> list[str]:
    primary = meta.get(fm.PRIMARY_HOOK_POINT, HOOK_POINTS[0])
    secondary = next(h for h in HOOK_POINTS if h != primary)
    rows = _ordered(tables.scores, primary)
    out = [
        "## SAE features of the base model's analysis", "",
        *_intro(meta, primary, secondary),
        *(ft.rules_lines(meta[fm.RULES]) if meta.get(fm.RULES) else []),
        *_best_sentences(rows, tables.compare, primary, compare_label),
        *_top_table(rows, tables, (primary, secondary), compare_label),
        f"![SAE feature AUROC]({FEATURES_PLOT})", "",
        *ft.fit_table(tables.fits, compare_label),
        *ft.probe_table(tables.probes, compare_label),
    ]
    if tables.differences is not None:
        out += [*ft.difference_table(tables.differences, primary, label, compare_label, TOP_PER_GROUP),
                f"![AUROC differences]({FEATURES_DIFFERENCE_PLOT})", ""]
    return out + [*_skipped_notes(meta, tables.compare, primary, compare_label), *_sae_notes(meta)]


def _intro(meta: dict, primary: str, secondary: str) -> list[str]:
    """The stand-in warning, tasks without vectors, what is measured, where the vectors came from."""
    out = []
    if meta.get(fm.STAND_IN_SAES):
        out += [
            "**Stand-in SAEs.** The SAEs used here are random stand-ins built for the demo model, "
            "not GemmaScope: these numbers test the pipeline, not whether the features carry over. "
            "An untrained SAE does not reconstruct the vectors (its FVU is far above 1), so every verdict "
            "reads *cannot tell*.",
            "",
        ]
    without = meta.get(fm.N_MISSING) or 0
    if without:
        out += [f"{without} task(s) of the dataset have no vectors and are left out.", ""]
    out += [
        f"Each listed feature's JumpReLU activation on the last prompt token of {meta.get(fm.N_TASKS)} tasks "
        f"({meta.get(fm.N_PASSED)} passed, {meta.get(fm.N_FAILED)} failed) at `{primary}` (the site the features "
        f"were selected on) and `{secondary}` (the site GemmaScope's SAEs were trained on). AUROC: probability that "
        "a task of the feature's class (passed for a \"correct\" feature, failed for an \"incorrect\" one) "
        "activates it more than a task of the other class (0.5 = no signal), with a seeded stratified bootstrap "
        f"95% interval ({meta.get(fm.N_BOOTSTRAP)} resamples, seed {meta.get(fm.SEED)}). p: one-sided "
        f"label-permutation p-value ({meta.get(fm.N_PERMUTATIONS)} permutations); q: Benjamini-Hochberg across "
        "every listed feature x site; null percentile: where the AUROC falls among "
        f"{meta.get(fm.N_NULL_LATENTS)} random latents of the same SAE on the same tasks. F1: threshold fitted on "
        f"the other folds only ({meta.get(fm.MAX_FOLDS)}-fold at most), beside the F1 of calling every task "
        "positive. Each feature links to its Neuronpedia page (the GemmaScope feature on Gemma-2-2B).",
        "",
    ]
    sources = meta.get(fm.VECTOR_SOURCES) or {}
    if sources:
        out += ["Vectors: " + "; ".join(f"`{hook}` from {src}" for hook, src in sources.items()) + ".", ""]
    return out


def _best_sentences(rows: pd.DataFrame, compare: pd.DataFrame | None, primary: str,
                    compare_label: str | None) -> list[str]:
    """One sentence per best feature (rank 0 of each group), with the comparison run's verdict."""
    out = []
    for r in (r for _, r in rows.iterrows() if r["rank"] == 0):
        name = _linked(r, f"layer {r['layer']}, latent {r['feature_idx']}")
        sentence = f"- Best {r['group']} feature ({name}) at `{primary}`: {_verdict_sentence(r)}."
        other = _lookup(compare, r, primary)
        if compare is not None and other is not None:
            sentence += f" In {compare_label}: {_verdict_sentence(other)}."
        out.append(sentence)
    return [*out, ""]


def _top_table(rows: pd.DataFrame, tables: FeatureTables, sites: tuple[str, str],
               compare_label: str | None) -> list[str]:
    """The first :data:`TOP_PER_GROUP` features of each list at both sites (and in the comparison run)."""
    primary, secondary = sites
    head = ["feature", "layer", "latent", f"AUROC `{primary}` [95% CI]", "q", "null pct", "verdict",
            "fires (passed / failed)", "F1 CV (all positive)", f"AUROC `{secondary}` [95% CI]"]
    if tables.compare is not None:
        head.append(f"AUROC {compare_label} [95% CI]")
    out = [ft.row(head), ft.row(["---"] * len(head))]
    for _, r in rows[rows["rank"] < TOP_PER_GROUP].iterrows():
        f1, base = _num(r["f1_cv"]), _num(r["f1_all_positive"])
        cells = [
            _linked(r, f"{r['group']} #{r['rank'] + 1}"), str(r["layer"]), str(r["feature_idx"]), _auroc_ci(r),
            ft.num(r["q_value"], ".2g"), ft.num(r["null_percentile"], ".0f"), r["verdict"],
            f"{_frac(r['fire_frac_passed'])} / {_frac(r['fire_frac_failed'])}" if r["scored"] else NA,
            (f"{f1:.2f}" if f1 is not None else NA) + (f" ({base:.2f})" if base is not None else ""),
            _auroc_ci(_lookup(tables.scores, r, secondary)),
        ]
        if tables.compare is not None:
            cells.append(_compare_cell(tables.compare, r))
        out.append(ft.row(cells))
    return out + ["", f"The first {TOP_PER_GROUP} of each list; all {len(tables.scores)} feature x hook-point rows "
                  f"are in `{fm.FEATURES_SUBDIR}/{fm.FEATURE_SCORES_FILE}`.", ""]


def _skipped_notes(meta: dict, compare: pd.DataFrame | None, primary: str, compare_label: str | None) -> list[str]:
    """Layers without an SAE, and features the comparison run could not score for other reasons."""
    out = []
    skipped = meta.get(fm.SKIPPED_LAYERS) or []
    if skipped:
        out += ["Not scored (no SAE for the layer):", ""]
        for s in skipped:
            out.append(f"- layer {s[fm.SKIPPED_LAYER]} ({', '.join(s.get(fm.SKIPPED_FEATURES, []))}): "
                       f"{s[fm.SKIPPED_REASON]}")
        out.append("")
    if compare is not None:
        skipped_layers = [s[fm.SKIPPED_LAYER] for s in skipped]  # already listed above
        at_primary = compare[compare["hook_point"] == primary]
        missing = at_primary[~at_primary["scored"] & ~at_primary["layer"].isin(skipped_layers)]
        if len(missing):
            why = "; ".join(sorted(set(missing["not_scored_reason"].astype(str))))
            out += [f"In {compare_label}, {len(missing)} feature(s) not scored at `{primary}`: {why}.", ""]
    return out


def _sae_notes(meta: dict) -> list[str]:
    """The SAEs used (id and sha256) and the stage's time."""
    out = []
    saes = meta.get(fm.SAES) or []
    if saes:
        out += ["SAEs (file sha256 in `features_metadata.json`):", ""]
        out += [f"- layer {s[fm.SAE_LAYER]}: `{s[fm.SAE_ID]}` (sha256 {str(s.get(fm.SAE_SHA256, ''))[:12]}...)"
                for s in saes]
        out.append("")
    wall = meta.get(fm.WALL_TIME_S)
    if wall is not None:
        out += [f"Stage time: {wall:.1f} s.", ""]
    return out


def _console(meta: dict, scores: pd.DataFrame) -> list[str]:
    primary = meta.get(fm.PRIMARY_HOOK_POINT, HOOK_POINTS[0])
    rows = _ordered(scores, primary)
    best = [r for _, r in rows.iterrows() if r["rank"] == 0]
    parts = [f"best {r['group']} L{r['layer']}#{r['feature_idx']} {_auroc_ci(r)} {r['verdict']}" for r in best]
    note = " (stand-in SAEs, not GemmaScope)" if meta.get(fm.STAND_IN_SAES) else ""
    return [f"SAE features at {primary}: " + ", ".join(parts) + note]


# ---- plot ------------------------------------------------------------------------------------


def plot_features(
    scores: pd.DataFrame, compare: pd.DataFrame | None, path: Path, *, label: str, compare_label: str | None
) -> Path:
    """AUROC with its 95 % interval per listed feature (list order, top to bottom), one panel per hook point."""
    keys = _ordered(scores, HOOK_POINTS[0])[["group", "rank", "layer", "feature_idx"]]
    keys = keys.sort_values(["group", "rank"]).reset_index(drop=True)  # correct then incorrect, by rank
    n = len(keys)
    fig = Figure(figsize=(13, 1.6 + 0.24 * n), layout="constrained")
    axes = fig.subplots(1, len(HOOK_POINTS), sharey=True)
    series = [(label, scores)] + ([(compare_label or "compare", compare)] if compare is not None else [])
    offsets = np.linspace(-0.18, 0.18, len(series)) if len(series) > 1 else [0.0]
    y = np.arange(n)
    for ax, hook in zip(axes, HOOK_POINTS):
        for (name, table), dy, color in zip(series, offsets, SERIES_COLORS):
            merged = keys.merge(table[table["hook_point"] == hook], on=list(keys.columns), how="left")
            ok = merged["scored"].fillna(False).astype(bool) & merged["auroc"].notna()
            xs = merged["auroc"].where(ok)
            err = np.vstack([(xs - merged["auroc_ci_low"]).where(ok), (merged["auroc_ci_high"] - xs).where(ok)])
            ax.errorbar(xs, y + dy, xerr=err, fmt="o", color=color, markersize=4, capsize=2, label=name)
            for i in np.flatnonzero(~ok.to_numpy()):
                ax.text(0.02, y[i] + dy, "not scored", transform=ax.get_yaxis_transform(), fontsize=7, color=color,
                        va="center")
            if name == label:  # this run's verdicts in the right margin
                for i, verdict in enumerate(merged["verdict"]):
                    ax.text(1.01, y[i], VERDICT_MARKS.get(verdict, ""), transform=ax.get_yaxis_transform(),
                            fontsize=8, va="center")
        ax.axvline(0.5, color="0.4", linestyle="--", linewidth=1)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(n - 0.5, -0.5)  # list order, top to bottom
        ax.set_xlabel(f"AUROC at {hook} (95% bootstrap interval)")
        ax.set_title(hook)
        ax.grid(axis="x", alpha=0.3)
        for boundary in np.flatnonzero(keys["group"].to_numpy()[1:] != keys["group"].to_numpy()[:-1]):
            ax.axhline(boundary + 0.5, color="0.6", linewidth=0.8)
    axes[0].set_yticks(y, [f"{g} #{r + 1}  L{l} {f}" for g, r, l, f in keys.itertuples(index=False)], fontsize=7)
    axes[-1].legend(loc="lower right", fontsize=8)
    fig.suptitle("Listed SAE features: AUROC for their class (correct: passed, incorrect: failed); right margin: "
                 "verdict (\u2713 carries over, \u2717 does not carry over, ? cannot tell)", fontsize=11)
    return save_figure(fig, path)


def plot_differences(differences: pd.DataFrame, path: Path, *, label: str, compare_label: str | None) -> Path:
    """Each listed feature's AUROC difference (this run minus the comparison run) with its paired 95 % interval,
    one panel per hook point, list order top to bottom."""
    keys = differences[differences["hook_point"] == HOOK_POINTS[0]][["group", "rank", "layer", "feature_idx"]]
    keys = keys.sort_values(["group", "rank"]).reset_index(drop=True)
    n = len(keys)
    fig = Figure(figsize=(11, 1.6 + 0.24 * n), layout="constrained")
    axes = fig.subplots(1, len(HOOK_POINTS), sharey=True)
    y = np.arange(n)
    for ax, hook in zip(axes, HOOK_POINTS):
        merged = keys.merge(differences[differences["hook_point"] == hook], on=list(keys.columns), how="left")
        ok = merged["auroc_difference"].notna()
        xs = merged["auroc_difference"].where(ok)
        err = np.vstack([(xs - merged["difference_ci_low"]).where(ok), (merged["difference_ci_high"] - xs).where(ok)])
        ax.errorbar(xs, y, xerr=err, fmt="o", color=SERIES_COLORS[0], markersize=4, capsize=2)
        for i in np.flatnonzero(~ok.to_numpy()):
            ax.text(0.02, y[i], "not in both runs", transform=ax.get_yaxis_transform(), fontsize=7, va="center")
        ax.axvline(0.0, color="0.4", linestyle="--", linewidth=1)
        ax.set_xlim(-1.02, 1.02)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlabel(f"AUROC difference at {hook} (95% paired interval)")
        ax.set_title(hook)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [f"{g} #{r + 1}  L{l} {f}" for g, r, l, f in keys.itertuples(index=False)], fontsize=7)
    fig.suptitle(f"Listed SAE features: AUROC of {label} minus AUROC of {compare_label or 'compare'}, on the tasks "
                 "both runs hold", fontsize=11)
    return save_figure(fig, path)
