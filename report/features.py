"""The report's SAE-feature section: do the base model's PVA features separate this run's outcomes?

Renders what ``python cli.py features`` wrote (``phase7_3/features/``; keys and columns in
``artifacts/schema/features.py``): the verdict's rules, a verdict sentence per best feature, the top
listed features (linked to Neuronpedia), the SAEs' fit, the probes, this run beside the comparison
run, notes, and the AUROC plots. Nothing here recomputes a statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from artifacts.files import read_optional_json
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from report.config import FEATURES_DIFFERENCE_PLOT, FEATURES_PLOT
from report.fmt import NA, num, table
from report.plots import plot_differences, plot_features

TOP_PER_GROUP = 5  # rows of the table per group; every row is in feature_scores.parquet
NEURONPEDIA = "https://www.neuronpedia.org/gemma-2-2b/{layer}-gemmascope-res-16k/{index}"
POSITIONS = (fm.POSITIONS_LAST_PROMPT, fm.POSITIONS_ALL_TOKENS)
PROBE_INPUTS = (fm.INPUTS_RESIDUAL, fm.INPUTS_LISTED)


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

    Writes its plots into ``output_dir``, removing stale ones when there is nothing to show.
    """
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

    def read(name: str, wanted: bool = True, columns: Sequence[str] | None = None) -> pd.DataFrame | None:
        path = features_dir / name
        if wanted and path.is_file():
            return pd.read_parquet(path)
        return None if columns is None else pd.DataFrame(columns=list(columns))

    scores = read(fm.FEATURE_SCORES_FILE)
    if scores is None:
        return None
    compare = read(fm.COMPARE_SCORES_FILE, bool(meta.get(fm.COMPARE)))
    return FeatureTables(scores, read(fm.SAE_FIT_FILE, columns=fm.SAE_FIT_COLUMNS),
                         read(fm.PROBES_FILE, columns=fm.PROBE_COLUMNS), compare,
                         read(fm.DIFFERENCES_FILE, compare is not None))


# ---- cells ----------------------------------------------------------------------------------


def _auroc_ci(row) -> str:
    """AUROC [95% CI], or why there is none."""
    if row is None or not row["scored"]:
        return "not scored"
    if pd.isna(row["auroc"]):
        name = "passed" if int(row["n_passed"]) <= int(row["n_failed"]) else "failed"
        return f"{NA} (fewer than 2 {name} tasks)"
    return f"{row['auroc']:.2f} [{row['auroc_ci_low']:.2f}, {row['auroc_ci_high']:.2f}]"


def _linked(row, text: str) -> str:
    """``text`` linked to the feature's Neuronpedia page (GemmaScope 16k residual SAE of Gemma-2-2B)."""
    return f"[{text}]({NEURONPEDIA.format(layer=int(row['layer']), index=int(row['feature_idx']))})"


def _verdict_sentence(row) -> str:
    """The verdict in words, why, and the numbers it rests on."""
    text = f"**{row['verdict']}** ({row['verdict_reason']})"
    if row["scored"]:
        text += f"; AUROC {_auroc_ci(row)}"
    if row["scored"] and not pd.isna(row["auroc"]):
        text += (f", p {num(row['p_value'], '.2g')}, q {num(row['q_value'], '.2g')}, "
                 f"null percentile {num(row['null_percentile'], '.0f')} (among random latents)")
    return text


def _ordered(scores: pd.DataFrame, hook: str) -> pd.DataFrame:
    """One hook point's rows, best correct and best incorrect first, then each group by rank."""
    rows = scores[scores["hook_point"] == hook]
    return rows.assign(_rest=rows["rank"] != 0).sort_values(["_rest", "group", "rank"]).drop(columns="_rest")


def _lookup(scores: pd.DataFrame | None, row, hook: str):
    """The row of ``scores`` for the same listed feature (group and rank) at ``hook``, or None."""
    if scores is None:
        return None
    match = scores[(scores["group"] == row["group"]) & (scores["rank"] == row["rank"]) & (scores["hook_point"] == hook)]
    return None if match.empty else match.iloc[0]


def _compare_cell(compare: pd.DataFrame, row) -> str:
    # The comparison run's first hook point that scored the feature (named in the cell).
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
    runs = [(fm.RUN_THIS, "")] + ([(fm.RUN_COMPARE, f" {compare_label}")] if compare_label else [])
    out = [
        "## SAE features of the base model's analysis", "",
        *_intro(meta, primary, secondary),
        *(_rules(meta[fm.RULES]) if meta.get(fm.RULES) else []),
        *_best_sentences(rows, tables.compare, primary, compare_label),
        *_top_table(rows, tables, (primary, secondary), compare_label),
        f"![SAE feature AUROC]({FEATURES_PLOT})", "",
        *_fit_table(tables.fits, runs),
        *_probe_table(tables.probes, runs),
    ]
    if tables.differences is not None:
        out += [*_difference_table(tables.differences, primary, label, compare_label),
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


def _rules(rules: dict) -> list[str]:
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


def _best_sentences(rows: pd.DataFrame, compare: pd.DataFrame | None, primary: str,
                    compare_label: str | None) -> list[str]:
    """One sentence per best feature (rank 0 of each group), with the comparison run's verdict."""
    out = []
    for _, r in rows[rows["rank"] == 0].iterrows():
        name = _linked(r, f"layer {r['layer']}, latent {r['feature_idx']}")
        sentence = f"- Best {r['group']} feature ({name}) at `{primary}`: {_verdict_sentence(r)}."
        other = _lookup(compare, r, primary)
        if other is not None:
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
    lines = []
    for _, r in rows[rows["rank"] < TOP_PER_GROUP].iterrows():
        base = num(r["f1_all_positive"], ".2f")
        cells = [
            _linked(r, f"{r['group']} #{r['rank'] + 1}"), str(r["layer"]), str(r["feature_idx"]), _auroc_ci(r),
            num(r["q_value"], ".2g"), num(r["null_percentile"], ".0f"), r["verdict"],
            f"{num(r['fire_frac_passed'], '.0%')} / {num(r['fire_frac_failed'], '.0%')}" if r["scored"] else NA,
            num(r["f1_cv"], ".2f") + (f" ({base})" if base != NA else ""),
            _auroc_ci(_lookup(tables.scores, r, secondary)),
        ]
        if tables.compare is not None:
            cells.append(_compare_cell(tables.compare, r))
        lines.append(cells)
    return [*table(head, lines), "", f"The first {TOP_PER_GROUP} of each list; all {len(tables.scores)} feature x "
            f"hook-point rows are in `{fm.FEATURES_SUBDIR}/{fm.FEATURE_SCORES_FILE}`.", ""]


def _fit_table(fits: pd.DataFrame, runs: list[tuple[str, str]]) -> list[str]:
    """FVU and L0 of each layer's SAE per positions and site, this run beside the comparison run."""
    if fits.empty:
        return []
    head = ["layer", "positions"] + [f"`{site}`{name}: FVU, L0 (vectors)" for _, name in runs for site in HOOK_POINTS]
    cells = _grid(fits, ("positions", POSITIONS), ("hook_point", HOOK_POINTS), runs,
                  lambda r: f"{num(r['fvu'], '.3g')}, {num(r['l0'], '.1f')} ({int(r['n_vectors'])})")
    return ["SAE fit. FVU: share of the vectors' variance around their mean that the SAE's reconstruction leaves "
            "unexplained (0 perfect, 1 no better than the mean); L0: active latents per vector. `last_prompt`: the "
            "vectors the features are scored on; `all_tokens`: a seeded sample of the stored token vectors (first "
            "position left out), at the site replay stored them at.", "", *table(head, cells), ""]


def _probe_table(probes: pd.DataFrame, runs: list[tuple[str, str]]) -> list[str]:
    """Out-of-fold AUROC [95% CI] and p-value of the dense probes on the residual and on the listed features."""
    if probes.empty:
        return []
    head = ["layer", "site"] + [f"{inputs}{name} AUROC [95% CI], p" for _, name in runs for inputs in PROBE_INPUTS]
    cells = _grid(probes, ("hook_point", HOOK_POINTS), ("inputs", PROBE_INPUTS), runs, lambda r: (
        f"{NA} (< 2 tasks in a class)" if pd.isna(r["auroc"]) else
        f"{r['auroc']:.2f} [{r['auroc_ci_low']:.2f}, {r['auroc_ci_high']:.2f}], p {num(r['p_value'], '.2g')}"))
    return ["Probes for `passed` (cross-validated logistic regression, standardized, L2; out-of-fold AUROC, "
            "bootstrap interval, permutation p-value): on the residual vectors and on the layer's listed features.",
            "", *table(head, cells), ""]


def _grid(frame: pd.DataFrame, rows: tuple[str, Sequence[str]], columns: tuple[str, Sequence[str]],
          runs: list[tuple[str, str]], cell: Callable[[pd.Series], str]) -> list[list[str]]:
    """One line per layer and value of the ``rows`` column (in its order): the layer, the value, then ``cell`` of
    the first row per run and value of the ``columns`` column ("-" where none)."""
    (row_col, row_order), (col, col_values) = rows, columns
    first = dict(frame.drop_duplicates(["layer", row_col, "run", col]).set_index(["layer", row_col, "run", col])
                 .iterrows())
    keys = sorted({(int(layer), v) for layer, v in zip(frame["layer"], frame[row_col])},
                  key=lambda k: (k[0], row_order.index(k[1])))
    return [[str(layer), value, *(cell(first[key]) if (key := (layer, value, run, c)) in first else "-"
                                  for run, _ in runs for c in col_values)] for layer, value in keys]


def _difference_table(differences: pd.DataFrame, site: str, label: str, compare_label: str | None) -> list[str]:
    """The first features of each list at ``site``: AUROC here, there, and the paired difference."""
    rows = differences[(differences["hook_point"] == site) & (differences["rank"] < TOP_PER_GROUP)]
    head = ["feature", "layer", "latent", "tasks", f"AUROC {label}", f"AUROC {compare_label}",
            "difference [95% paired CI]"]
    cells = [[f"{r['group']} #{r['rank'] + 1}", str(r["layer"]), str(r["feature_idx"]), str(r["n_shared_tasks"]),
              num(r["auroc_this"], ".2f"), num(r["auroc_compare"], ".2f"),
              NA if pd.isna(r["auroc_difference"]) else
              f"{r['auroc_difference']:+.2f} [{r['difference_ci_low']:+.2f}, {r['difference_ci_high']:+.2f}]"]
             for _, r in rows.sort_values(["group", "rank"]).iterrows()]
    return [f"{label} beside {compare_label} at `{site}`, on the tasks both hold (tasks resampled once for both "
            "runs):", "", *table(head, cells), "", f"Every feature x site is in `{fm.FEATURES_SUBDIR}/"
            f"{fm.DIFFERENCES_FILE}`.", ""]


def _skipped_notes(meta: dict, compare: pd.DataFrame | None, primary: str, compare_label: str | None) -> list[str]:
    """Layers without an SAE, and features the comparison run could not score for other reasons."""
    out = []
    skipped = meta.get(fm.SKIPPED_LAYERS) or []
    if skipped:
        out += ["Not scored (no SAE for the layer):", "",
                *(f"- layer {s[fm.SKIPPED_LAYER]} ({', '.join(s.get(fm.SKIPPED_FEATURES, []))}): {s[fm.SKIPPED_REASON]}"
                  for s in skipped), ""]
    if compare is not None:
        at_primary = compare[compare["hook_point"] == primary]
        # Layers without an SAE are listed above already.
        missing = at_primary[~at_primary["scored"] & ~at_primary["layer"].isin([s[fm.SKIPPED_LAYER] for s in skipped])]
        if len(missing):
            why = "; ".join(sorted(set(missing["not_scored_reason"].astype(str))))
            out += [f"In {compare_label}, {len(missing)} feature(s) not scored at `{primary}`: {why}.", ""]
    return out


def _sae_notes(meta: dict) -> list[str]:
    """The SAEs used (id and sha256) and the stage's time."""
    out = []
    saes = meta.get(fm.SAES) or []
    if saes:
        out += ["SAEs (file sha256 in `features_metadata.json`):", "",
                *(f"- layer {s[fm.SAE_LAYER]}: `{s[fm.SAE_ID]}` (sha256 {str(s.get(fm.SAE_SHA256, ''))[:12]}...)"
                  for s in saes), ""]
    wall = meta.get(fm.WALL_TIME_S)
    if wall is not None:
        out += [f"Stage time: {wall:.1f} s.", ""]
    return out


def _console(meta: dict, scores: pd.DataFrame) -> list[str]:
    primary = meta.get(fm.PRIMARY_HOOK_POINT, HOOK_POINTS[0])
    rows = _ordered(scores, primary)
    parts = [f"best {r['group']} L{r['layer']}#{r['feature_idx']} {_auroc_ci(r)} {r['verdict']}"
             for _, r in rows[rows["rank"] == 0].iterrows()]
    note = " (stand-in SAEs, not GemmaScope)" if meta.get(fm.STAND_IN_SAES) else ""
    return [f"SAE features at {primary}: " + ", ".join(parts) + note]
