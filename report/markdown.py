"""Render the statistics as ``report.md`` and as the console summary (pure text)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from report.compare import UNKNOWN_VERDICT, Comparison
from report.fmt import NA, fmt_auroc, fmt_cv, num, pct
from report.separation import CrossValidated
from report.stats import (
    OVERALL,
    CategoryCount,
    ComplexityGroup,
    PassRate,
    ReportStats,
    StageCost,
    Summary,
    VerdictAgreement,
    summarize,
)

RULES = {g.value: g.rule for g in ComplexityGroup} | {OVERALL: "all"}
VERDICT_NOTE = (
    "robust: our extracted code, with `test_setup_code`, each `assert EXPR == LITERAL` decided "
    "outside the sandbox; legacy: the earlier tool's rules (the whole completion less the prompt "
    "and fences, no `test_setup_code`), which the base baseline and the 7.6 steering code used. "
    "Compare like with like."
)
MAX_LISTED_IDS = 50
AUROC_CAVEAT = (
    "The in-sample AUROC projects each task on a direction fitted on the same tasks; with "
    "d_model dimensions and a few hundred tasks that direction partly fits noise, so it is "
    "optimistic (random activations score well above 0.5). The cross-validated AUROC fits the "
    "direction and midpoint on the other folds only (stratified, seeded) and is the number to "
    "trust; with few passed tasks it is noisy. AUROC is n/a when a class is empty."
)


def render_markdown(
    stats: ReportStats,
    *,
    dataset_path: str,
    plots: Mapping[str, str],
    comparisons: Sequence[Comparison] = (),
    created: str,
) -> str:
    """The whole ``report.md``.

    Args:
        stats: the dataset's statistics.
        dataset_path: shown in the header.
        plots: plot key ("pass_rate", "completion_length", "layer_<L>") -> file name.
        comparisons: the ``--compare`` results (one per verdict), if any.
        created: creation timestamp (ISO 8601).
    """
    out = [
        "# pva-baseline report",
        "",
        f"- model: `{stats.model or 'unknown'}`",
        f"- dataset: `{dataset_path}` ({stats.n_tasks} tasks)",
        f"- created: {created}",
        "",
        "## Pass rate",
        "",
        f"`test_passed` holds the {stats.verdict or 'unrecorded'} verdict.",
        "",
        *_pass_rate_table([("", stats.pass_rates)]),
        "",
        *_verdict_section(stats.verdicts),
        *_image("pass rate by complexity group", plots.get("pass_rate")),
        "## Generation",
        "",
        "### Finish reasons",
        "",
        *_category_table(stats.finish_reasons, "finish reason", "no generations.parquet with finish_reason"),
        "",
        "### Lengths and time",
        "",
        *_summary_table(stats),
        "",
        *_image("completion length, passed vs failed", plots.get("completion_length")),
        "## Evaluation: error types of failed tasks",
        "",
        *_category_table(stats.error_types, "error type", "no error_type column or no failed task", passed=False),
        "",
        "## Cost per stage",
        "",
        *_stage_table(stats.stage_costs),
        "",
        "## Replay fidelity",
        "",
        _fidelity_line(stats.replay_fidelity),
        "",
        *_layer_section(stats, plots),
    ]
    for comparison in comparisons:
        out += _comparison_section(comparison)
    return "\n".join(out).rstrip() + "\n"


def render_console(stats: ReportStats, comparisons: Sequence[Comparison] = ()) -> str:
    """A few lines for the terminal: pass rates, verdicts, outcomes, costs, fidelity, layer AUROCs."""
    rates = " | ".join(_rate_phrase(r) for r in stats.pass_rates)
    lines = [f"model {stats.model or 'unknown'}, {stats.n_tasks} tasks", f"pass rate: {rates}"]
    if stats.verdicts is not None:
        v = stats.verdicts
        overall = {name: rates[0] for name, rates in v.rates.items()}
        lines.append(
            "verdicts: " + ", ".join(f"{name} {r.n_passed}/{r.n_tasks}" for name, r in overall.items())
            + f" (test_passed: {stats.verdict or 'unrecorded'}); {v.n_differ} task(s) differ"
            + (f": robust only {_ids(v.only_robust)}" if v.only_robust else "")
            + (f", legacy only {_ids(v.only_legacy)}" if v.only_legacy else "")
        )
    if stats.finish_reasons:
        lines.append("finish reasons: " + ", ".join(f"{c.name} {c.n_tasks}" for c in stats.finish_reasons))
    if stats.error_types:
        lines.append("error types (failed): " + ", ".join(f"{c.name} {c.n_tasks}" for c in stats.error_types))
    for cost in stats.stage_costs:
        parts = [
            f"{cost.n_tasks} tasks" if cost.n_tasks is not None else None,
            f"{cost.wall_time_s:.1f} s" if cost.wall_time_s is not None else None,
            f"{cost.n_tokens} tokens" if cost.n_tokens is not None else None,
            f"{cost.tokens_per_s:.1f} tokens/s" if cost.tokens_per_s is not None else None,
        ]
        lines.append(f"{cost.stage}: " + (", ".join(p for p in parts if p) or "no numbers recorded"))
    lines.append(_fidelity_line(stats.replay_fidelity))
    for sep in stats.layers:
        lines.append(
            f"layer {sep.layer}: norm AUROC {fmt_auroc(sep.norm_auroc)}, projection AUROC in-sample "
            f"{fmt_auroc(sep.projection_auroc)} / {_cv_text(sep.cross_validated)} "
            f"({sep.n_passed} passed, {sep.n_failed} failed)"
        )
    for c in comparisons:
        lines.append(
            f"compare {c.base_label} ({c.verdicts}): {c.n_shared} shared tasks, pass rate {pct(c.rates[0].rate)} vs "
            f"{pct(c.base_rates[0].rate)}, agreement {pct(c.agreement)}, kappa {num(c.cohen_kappa, '.2f')}"
        )
    return "\n".join(lines)


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:MAX_LISTED_IDS])
    return shown + (f" and {len(ids) - MAX_LISTED_IDS} more" if len(ids) > MAX_LISTED_IDS else "")


def _verdict_section(v: VerdictAgreement | None) -> list[str]:
    if v is None:
        return ["_The dataset has no `robust_test_passed`/`legacy_test_passed` columns: one verdict only._", ""]
    robust, legacy = v.rates["robust"], v.rates["legacy"]
    return [
        "### Both verdicts",
        "",
        VERDICT_NOTE,
        "",
        *_pass_rate_table([("robust", robust), ("legacy", legacy)]),
        "",
        "Per-task outcomes (rows: robust, columns: legacy):",
        "",
        _row(["", "legacy passed", "legacy failed"]),
        _row(["---"] * 3),
        _row(["robust passed", str(v.counts[(True, True)]), str(v.counts[(True, False)])]),
        _row(["robust failed", str(v.counts[(False, True)]), str(v.counts[(False, False)])]),
        "",
        f"Tasks passing under robust only ({len(v.only_robust)}): {_ids(v.only_robust) or 'none'}.",
        "",
        f"Tasks passing under legacy only ({len(v.only_legacy)}): {_ids(v.only_legacy) or 'none'}.",
        "",
    ]


def _cv_text(cv: CrossValidated) -> str:
    return fmt_cv(cv.auroc, cv.n_folds)


def _cv_cell(cv: CrossValidated) -> str:
    return f"{fmt_auroc(cv.auroc)} ({cv.n_folds}-fold)" if cv.n_folds else NA


def _quantity(value: float | None) -> str:
    # Token counts are whole numbers; times are not.
    if value is None:
        return NA
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _rate_phrase(rate: PassRate) -> str:
    return f"{rate.label} ({RULES.get(rate.label, '')}) {rate.n_passed}/{rate.n_tasks} = {pct(rate.rate)}"


def _pass_rate_table(series: Sequence[tuple[str, Sequence[PassRate]]]) -> list[str]:
    head = ["group", "rule", "tasks"]
    for name, _ in series:
        suffix = f" ({name})" if name else ""
        head += [f"passed{suffix}", f"pass rate{suffix}"]
    rows = [_row(head), _row(["---"] * len(head))]
    for i, rate in enumerate(series[0][1]):
        cells = [rate.label, RULES.get(rate.label, ""), str(rate.n_tasks)]
        for _, rates in series:
            cells += [str(rates[i].n_passed), pct(rates[i].rate)]
        rows.append(_row(cells))
    return rows


def _category_table(
    counts: Sequence[CategoryCount], name: str, empty: str, *, passed: bool = True
) -> list[str]:
    if not counts:
        return [f"_{empty}._"]
    head = [name, "tasks", "passed", "pass rate"] if passed else [name, "tasks"]
    rows = [_row(head), _row(["---"] * len(head))]
    for c in counts:
        cells = [f"`{c.name}`", str(c.n_tasks)]
        if passed:
            cells += [str(c.n_passed), pct(c.n_passed / c.n_tasks)]
        rows.append(_row(cells))
    return rows


def _summary_table(stats: ReportStats) -> list[str]:
    items: list[tuple[str, Summary | None]] = [("prompt tokens", stats.prompt_tokens)]
    if stats.completion_lengths is not None:
        lengths = stats.completion_lengths
        items.append((f"completion {lengths.unit}", summarize(lengths.values)))
        items.append((f"completion {lengths.unit}, passed", summarize(lengths.values[lengths.passed])))
        items.append((f"completion {lengths.unit}, failed", summarize(lengths.values[~lengths.passed])))
    items.append(("generation time per task (s)", stats.generation_time))
    rows = [_row(["quantity", "tasks", "mean", "median", "min", "max", "total"]), _row(["---"] * 7)]
    for label, s in items:
        if s is None:
            rows.append(_row([label, NA, NA, NA, NA, NA, NA]))
            continue
        rows.append(_row([label, str(s.n), *(_quantity(v) for v in (s.mean, s.median, s.min, s.max, s.total))]))
    return rows


def _stage_table(costs: Sequence[StageCost]) -> list[str]:
    if not costs:
        return ["_no stage metadata found._"]
    rows = [_row(["stage", "tasks", "wall time (s)", "tokens", "tokens/s"]), _row(["---"] * 5)]
    for c in costs:
        rows.append(_row([c.stage, num(c.n_tasks, "d"), num(c.wall_time_s), num(c.n_tokens, "d"), num(c.tokens_per_s)]))
    return rows


def _fidelity_line(fidelity: Mapping | None) -> str:
    if not fidelity:
        return "replay fidelity: not recorded (replay-activations ran without a check)"
    parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fidelity.items()]
    return "replay fidelity: " + ", ".join(parts)


def _layer_section(stats: ReportStats, plots: Mapping[str, str]) -> list[str]:
    out = ["## Activation signal per layer", ""]
    if not stats.layers:
        return out + ["_no activations found (run replay-activations, or pass --activations-dir)._", ""]
    hook = f" at `{stats.hook_point}`" if stats.hook_point else ""
    out += [
        f"Last-prompt-token residual activation{hook}: its L2 norm, and its projection on the unit "
        "vector along (mean of passed tasks - mean of failed tasks). AUROC: probability that a "
        "passed task scores higher than a failed one (0.5 = no signal).",
        "",
        AUROC_CAVEAT,
        "",
        _row(["layer", "d_model", "passed", "failed", "no activations", "norm AUROC",
              "projection AUROC (in-sample)", "projection AUROC (CV)"]),
        _row(["---"] * 8),
    ]
    for sep in stats.layers:
        out.append(_row([str(sep.layer), str(sep.d_model), str(sep.n_passed), str(sep.n_failed), str(sep.n_missing),
                         fmt_auroc(sep.norm_auroc), fmt_auroc(sep.projection_auroc), _cv_cell(sep.cross_validated)]))
    out.append("")
    for sep in stats.layers:
        out += _image(f"layer {sep.layer}", plots.get(f"layer_{sep.layer}"))
    return out


def _comparison_section(c: Comparison) -> list[str]:
    out = [
        f"## Comparison with `{c.base_label}` ({c.verdicts})",
        "",
        f"Ours under the {c.verdict} verdict, the base under "
        + (f"the {c.base_verdict} verdict." if c.base_verdict != UNKNOWN_VERDICT else "a verdict of unknown rules "
           "(no `legacy_test_passed` column: its `test_passed`).")
        + ("" if c.verdict == c.base_verdict else " The rules differ: read the difference with care."),
        "",
        f"Base dataset: `{c.base_path}`. {c.n_shared} shared tasks "
        f"({c.n_only_ours} only in ours, {c.n_only_base} only in the base); rates below are on the "
        "shared tasks, grouped by our cyclomatic complexity.",
        "",
        *_pass_rate_table([(c.label, c.rates), (c.base_label, c.base_rates)]),
        "",
        f"Per-task outcomes (rows: {c.label}, columns: {c.base_label}):",
        "",
        _row(["", "base passed", "base failed"]),
        _row(["---"] * 3),
        _row([f"{c.label} passed", str(c.count(ours=True, base=True)), str(c.count(ours=True, base=False))]),
        _row([f"{c.label} failed", str(c.count(ours=False, base=True)), str(c.count(ours=False, base=False))]),
        "",
        f"Agreement {pct(c.agreement)}, Cohen's kappa {num(c.cohen_kappa, '.2f')}. "
        "Every shared task is listed in `compare_tasks.csv`.",
        "",
    ]
    disagree = c.per_task.loc[~c.per_task["agree"]]
    if disagree.empty:
        return out + ["_The two models agree on every shared task._", ""]
    out += [f"Tasks with different outcomes ({len(disagree)}):", "",
            _row(["task_id", "cc", "group", c.label, c.base_label]), _row(["---"] * 5)]
    for r in disagree.itertuples(index=False):
        out.append(_row([str(r.task_id), NA if pd.isna(r.cyclomatic_complexity) else str(r.cyclomatic_complexity),
                         str(r.complexity_group or NA),
                         _outcome(r.passed), _outcome(r.base_passed)]))
    return out + [""]


def _outcome(passed: bool) -> str:
    return "pass" if passed else "fail"


def _image(alt: str, name: str | None) -> list[str]:
    return [f"![{alt}]({name})", ""] if name else []


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
