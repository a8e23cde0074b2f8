"""PNG plots of the report (matplotlib's Agg canvas; no pyplot global state, no display).

Every plot states what is missing instead of drawing an empty axis: "no passed tasks" when
a weak model passes nothing, "no failed tasks" when it passes everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from artifacts.files import atomic_path
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from report.fmt import fmt_auroc
from report.stats import GROUP_RULES, CompletionLengths, LayerSeparation, PassRate

PASSED_COLOR = "#1b9e77"
FAILED_COLOR = "#d95f02"
SERIES_COLORS = ("#4c72b0", "#8c8c8c", "#dd8452", "#55a868")
DPI = 110
MAX_BINS = 40
VERDICT_MARKS = {fm.VERDICT_CARRIES_OVER: "\u2713", fm.VERDICT_DOES_NOT: "\u2717", fm.VERDICT_CANNOT_TELL: "?"}
FEATURE_KEYS = ["group", "rank", "layer", "feature_idx"]


def save_figure(fig: Figure, path: Path) -> Path:
    """Render ``fig`` to PNG at ``path`` atomically."""
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    return path


def plot_pass_rates(series: Sequence[tuple[str, Sequence[PassRate]]], path: Path, *, title: str) -> Path:
    """Grouped bars: pass rate overall and per complexity group, one bar per (model label, its pass rates)."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    labels = [rate.label for rate in series[0][1]]
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    top = 0.0
    for i, (name, rates) in enumerate(series):
        heights = [100 * (r.rate or 0.0) for r in rates]
        top = max(top, *heights)
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=name,
                      color=SERIES_COLORS[i % len(SERIES_COLORS)])
        for bar, rate in zip(bars, rates):
            text = f"{rate.n_passed}/{rate.n_tasks}" if rate.n_tasks else "no tasks"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)
    if all(rates[0].n_passed == 0 for _, rates in series):
        ax.text(0.5, 0.5, "no passed tasks", transform=ax.transAxes, ha="center", va="center", fontsize=13, color="0.3")
    ax.set_xticks(x, [f"{label}\n({GROUP_RULES[label]})" if label in GROUP_RULES else label for label in labels])
    ax.set_ylabel("pass rate (%)")
    ax.set_ylim(0, min(112.0, max(10.0, top * 1.15)))
    ax.set_title(f"{title}; bar labels: passed/tasks")
    ax.grid(axis="y", alpha=0.3)
    # Below the axis, so it never covers a bar or its label.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(series), fontsize=9, frameon=False)
    return save_figure(fig, path)


def plot_completion_lengths(lengths: CompletionLengths, path: Path) -> Path:
    """Completion-length histograms (density), passed vs failed, with class medians."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    _class_histograms(ax, lengths.values, lengths.passed)
    ax.set_xlabel(f"completion length ({lengths.unit})")
    ax.set_title(f"Completion length, passed vs failed ({len(lengths.values)} tasks)")
    return save_figure(fig, path)


def plot_layer(sep: LayerSeparation, path: Path, *, hook_point: str | None = None) -> Path:
    """Three panels for one layer, passed vs failed: activation norm, in-sample projection on the
    passed-minus-failed mean difference, and the held-out (cross-validated) projection.

    The held-out panel is the honest picture: in-sample, a direction fitted in d_model
    dimensions on a few hundred tasks separates even pure noise.
    """
    fig = Figure(figsize=(17, 4.6))
    ax_norm, ax_in, ax_cv = fig.subplots(1, 3)
    _class_histograms(ax_norm, sep.norms, sep.passed)
    ax_norm.set_xlabel("L2 norm of the last-prompt-token activation")
    ax_norm.set_title(f"Activation norm: AUROC {fmt_auroc(sep.norm_auroc)}")
    missing_class = "no passed tasks" if sep.n_passed == 0 else "no failed tasks" if sep.n_failed == 0 else None
    cv = sep.cross_validated
    if sep.projections is None:
        _note(ax_in, f"{missing_class}:\nthe passed-minus-failed\ndirection is undefined")
        ax_in.set_title("In-sample projection: AUROC n/a")
    else:
        _class_histograms(ax_in, sep.projections, sep.passed)
        ax_in.set_xlabel("projection on unit(mean passed - mean failed), all tasks")
        ax_in.set_title(f"In-sample projection: AUROC {fmt_auroc(sep.projection_auroc)} (optimistic)")
    if cv.scores is None:
        _note(ax_cv, f"{missing_class or 'fewer than 2 passed or 2 failed tasks'}:\nno cross-validation")
        ax_cv.set_title("Held-out projection: AUROC n/a")
    else:
        _class_histograms(ax_cv, cv.scores, sep.passed)
        ax_cv.set_xlabel("held-out score: (x - midpoint) . unit direction of the other folds")
        ax_cv.set_title(f"Held-out projection ({cv.n_folds}-fold CV): AUROC {fmt_auroc(cv.auroc)}")
    where = f" ({hook_point})" if hook_point else ""
    missing_note = f", {sep.n_missing} tasks without activations" if sep.n_missing else ""
    fig.suptitle(f"Layer {sep.layer}{where}: {sep.n_passed} passed vs {sep.n_failed} failed tasks{missing_note}",
                 fontsize=13)
    return save_figure(fig, path)


def plot_features(
    scores: pd.DataFrame, compare: pd.DataFrame | None, path: Path, *, label: str, compare_label: str | None
) -> Path:
    """AUROC with its 95 % interval per listed feature (list order, top to bottom), one panel per hook point."""
    keys, fig, axes, y = _feature_panels(scores, width=13)
    series = [(label, scores)] + ([(compare_label or "compare", compare)] if compare is not None else [])
    offsets = np.linspace(-0.18, 0.18, len(series)) if len(series) > 1 else [0.0]
    for ax, hook in zip(axes, HOOK_POINTS):
        for (name, table), dy, color in zip(series, offsets, SERIES_COLORS):
            merged = keys.merge(table[table["hook_point"] == hook], on=FEATURE_KEYS, how="left")
            ok = merged["scored"].fillna(False).astype(bool) & merged["auroc"].notna()
            _intervals(ax, y + dy, merged, ("auroc", "auroc_ci_low", "auroc_ci_high"), ok, color=color, label=name,
                       note="not scored", note_color=color)
            if name == label:  # this run's verdicts in the right margin
                for i, verdict in enumerate(merged["verdict"]):
                    ax.text(1.01, y[i], VERDICT_MARKS.get(verdict, ""), transform=ax.get_yaxis_transform(),
                            fontsize=8, va="center")
    _finish_panels(axes, keys, y, center=0.5, xlim=(-0.02, 1.02), xlabel="AUROC at {} (95% bootstrap interval)")
    for ax in axes:
        for boundary in np.flatnonzero(keys["group"].to_numpy()[1:] != keys["group"].to_numpy()[:-1]):
            ax.axhline(boundary + 0.5, color="0.6", linewidth=0.8)
    axes[-1].legend(loc="lower right", fontsize=8)
    fig.suptitle("Listed SAE features: AUROC for their class (correct: passed, incorrect: failed); right margin: "
                 "verdict (\u2713 carries over, \u2717 does not carry over, ? cannot tell)", fontsize=11)
    return save_figure(fig, path)


def plot_differences(differences: pd.DataFrame, path: Path, *, label: str, compare_label: str | None) -> Path:
    """Each listed feature's AUROC difference (this run minus the comparison run) with its paired 95 % interval,
    one panel per hook point, list order top to bottom."""
    keys, fig, axes, y = _feature_panels(differences, width=11)
    for ax, hook in zip(axes, HOOK_POINTS):
        merged = keys.merge(differences[differences["hook_point"] == hook], on=FEATURE_KEYS, how="left")
        _intervals(ax, y, merged, ("auroc_difference", "difference_ci_low", "difference_ci_high"),
                   merged["auroc_difference"].notna(), color=SERIES_COLORS[0], note="not in both runs")
    _finish_panels(axes, keys, y, center=0.0, xlim=(-1.02, 1.02), xlabel="AUROC difference at {} (95% paired interval)")
    fig.suptitle(f"Listed SAE features: AUROC of {label} minus AUROC of {compare_label or 'compare'}, on the tasks "
                 "both runs hold", fontsize=11)
    return save_figure(fig, path)


def _feature_panels(table: pd.DataFrame, *, width: float) -> tuple[pd.DataFrame, Figure, np.ndarray, np.ndarray]:
    """The listed features in list order (correct then incorrect, by rank), a figure with a panel per hook point,
    and the features' rows on the y axis."""
    keys = table[table["hook_point"] == HOOK_POINTS[0]][FEATURE_KEYS]
    keys = keys.sort_values(["group", "rank"]).reset_index(drop=True)
    fig = Figure(figsize=(width, 1.6 + 0.24 * len(keys)), layout="constrained")
    return keys, fig, fig.subplots(1, len(HOOK_POINTS), sharey=True), np.arange(len(keys))


def _intervals(ax: Axes, y: np.ndarray, table: pd.DataFrame, columns: tuple[str, str, str], ok: pd.Series, *,
               color: str, note: str, note_color: str | None = None, label: str | None = None) -> None:
    # Points with horizontal error bars where ``ok``; ``note`` in the left margin elsewhere.
    value, low, high = (table[c] for c in columns)
    xs = value.where(ok)
    err = np.vstack([(xs - low).where(ok), (high - xs).where(ok)])
    ax.errorbar(xs, y, xerr=err, fmt="o", color=color, markersize=4, capsize=2, label=label)
    for i in np.flatnonzero(~ok.to_numpy()):
        ax.text(0.02, y[i], note, transform=ax.get_yaxis_transform(), fontsize=7, color=note_color, va="center")


def _finish_panels(axes: Sequence[Axes], keys: pd.DataFrame, y: np.ndarray, *, center: float,
                   xlim: tuple[float, float], xlabel: str) -> None:
    # The no-effect line, limits (list order top to bottom), labels and the features' names.
    for ax, hook in zip(axes, HOOK_POINTS):
        ax.axvline(center, color="0.4", linestyle="--", linewidth=1)
        ax.set_xlim(*xlim)
        ax.set_ylim(len(keys) - 0.5, -0.5)
        ax.set_xlabel(xlabel.format(hook))
        ax.set_title(hook)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [f"{g} #{r + 1}  L{l} {f}" for g, r, l, f in keys.itertuples(index=False)], fontsize=7)


def _class_histograms(ax: Axes, values: np.ndarray, passed: np.ndarray) -> None:
    # Densities, because a weak model's classes differ in size by 20x or more; a rug under
    # the bars keeps a class of one or two tasks visible.
    values = np.asarray(values, dtype=np.float64)
    passed = np.asarray(passed, dtype=bool)
    ax.set_ylabel("density")
    if values.size == 0:
        _note(ax, "no tasks")
        return
    bins = np.histogram_bin_edges(values, bins=min(MAX_BINS, max(5, int(np.sqrt(values.size)) * 2)))
    if bins[0] == bins[-1]:  # all values equal: give the bar a width
        bins = np.linspace(bins[0] - 0.5, bins[0] + 0.5, 6)
    for mask, name, color in ((passed, "passed", PASSED_COLOR), (~passed, "failed", FAILED_COLOR)):
        group = values[mask]
        if group.size == 0:
            continue
        ax.hist(group, bins=bins, density=True, alpha=0.45, color=color, edgecolor=color,
                label=f"{name} (n={group.size}, median {np.median(group):.3g})")
        ax.axvline(float(np.median(group)), color=color, linestyle="--", linewidth=1.2)
        ax.plot(group, np.zeros_like(group), "|", color=color, markersize=12, alpha=0.8)
    for mask, name in ((passed, "passed"), (~passed, "failed")):
        if not mask.any():  # an empty legend entry: the legend finds a free spot, bars stay visible
            ax.plot([], [], " ", label=f"no {name} tasks")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom so the legend does not hide bars
    ax.legend(loc="upper right", fontsize=9)
    ax.grid(alpha=0.3)


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])
