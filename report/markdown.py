"""Render the statistics as ``report.md`` and as the console summary (pure text)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from report.compare import UNKNOWN_VERDICT, Comparison
from report.fmt import NA, fmt_auroc, num, pct, table
from report.stats import GROUP_RULES, OVERALL, PassRate, ReportStats, VerdictAgreement, summarize

RULES = {**GROUP_RULES, OVERALL: "all"}
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


def render_markdown(stats: ReportStats, *, dataset_path: str, plots: Mapping[str, str],
                    comparisons: Sequence[Comparison], created: str) -> str:
    """The whole ``report.md``; ``plots``: plot key ("pass_rate", "completion_length", "layer_<L>") -> file name."""
    out = [
        "# pva-baseline report", "",
        f"- model: `{stats.model or 'unknown'}`",
        f"- dataset: `{dataset_path}` ({stats.n_tasks} tasks)",
        f"- created: {created}", "",
        "## Pass rate", "",
        f"`test_passed` holds the {stats.verdict or 'unrecorded'} verdict.", "",
        *_pass_rate_table([("", stats.pass_rates)]), "",
        *_verdict_section(stats.verdicts),
        *_image("pass rate by complexity group", plots.get("pass_rate")),
        "## Generation", "",
        "### Finish reasons", "",
        *_category_table(stats.finish_reasons, "finish reason", "no generations.parquet with finish_reason"), "",
        "### Lengths and time", "",
        *_summary_table(stats), "",
        *_image("completion length, passed vs failed", plots.get("completion_length")),
        "## Evaluation: error types of failed tasks", "",
        *_category_table(stats.error_types, "error type", "no error_type column or no failed task", passed=False), "",
        "## Cost per stage", "",
        *(table(["stage", "tasks", "wall time (s)", "tokens", "tokens/s"],
                [[c.stage, num(c.n_tasks, "d"), num(c.wall_time_s, ".1f"), num(c.n_tokens, "d"),
                  num(c.tokens_per_s, ".1f")] for c in stats.stage_costs])
          if stats.stage_costs else ["_no stage metadata found._"]), "",
        "## Replay fidelity", "",
        _fidelity_line(stats.replay_fidelity), "",
        *_layer_section(stats, plots),
    ]
    for comparison in comparisons:
        out += _comparison_section(comparison)
    return "\n".join(out).rstrip() + "\n"


def render_console(stats: ReportStats, comparisons: Sequence[Comparison]) -> str:
    """A few lines for the terminal: pass rates, verdicts, outcomes, costs, fidelity, layer AUROCs."""
    rates = " | ".join(f"{r.label} ({RULES.get(r.label, '')}) {r.n_passed}/{r.n_tasks} = {pct(r.rate)}"
                       for r in stats.pass_rates)
    lines = [f"model {stats.model or 'unknown'}, {stats.n_tasks} tasks", f"pass rate: {rates}"]
    if (v := stats.verdicts) is not None:
        lines.append(
            "verdicts: " + ", ".join(f"{name} {r[0].n_passed}/{r[0].n_tasks}" for name, r in v.rates.items())
            + f" (test_passed: {stats.verdict or 'unrecorded'}); {v.n_differ} task(s) differ"
            + (f": robust only {_ids(v.only_robust)}" if v.only_robust else "")
            + (f", legacy only {_ids(v.only_legacy)}" if v.only_legacy else "")
        )
    if stats.finish_reasons:
        lines.append("finish reasons: " + ", ".join(f"{c.label} {c.n_tasks}" for c in stats.finish_reasons))
    if stats.error_types:
        lines.append("error types (failed): " + ", ".join(f"{c.label} {c.n_tasks}" for c in stats.error_types))
    for c in stats.stage_costs:
        parts = [f"{c.n_tasks} tasks" if c.n_tasks is not None else None,
                 f"{c.wall_time_s:.1f} s" if c.wall_time_s is not None else None,
                 f"{c.n_tokens} tokens" if c.n_tokens is not None else None,
                 f"{c.tokens_per_s:.1f} tokens/s" if c.tokens_per_s is not None else None]
        lines.append(f"{c.stage}: " + (", ".join(p for p in parts if p) or "no numbers recorded"))
    lines.append(_fidelity_line(stats.replay_fidelity))
    for sep in stats.layers:
        cv = sep.cross_validated
        cv_text = f"{cv.n_folds}-fold CV {fmt_auroc(cv.auroc)}" if cv.n_folds else "CV n/a (< 2 tasks in a class)"
        lines.append(f"layer {sep.layer}: norm AUROC {fmt_auroc(sep.norm_auroc)}, projection AUROC in-sample "
                     f"{fmt_auroc(sep.projection_auroc)} / {cv_text} ({sep.n_passed} passed, {sep.n_failed} failed)")
    for c in comparisons:
        lines.append(
            f"compare {c.base_label} ({c.verdicts}): {c.n_shared} shared tasks, pass rate {pct(c.rates[0].rate)} vs "
            f"{pct(c.base_rates[0].rate)}, agreement {pct(c.agreement)}, kappa {num(c.cohen_kappa, '.2f')}"
        )
    return "\n".join(lines)


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:MAX_LISTED_IDS])
    return shown + (f" and {len(ids) - MAX_LISTED_IDS} more" if len(ids) > MAX_LISTED_IDS else "")


def _outcome_table(rows: str, columns: str, count) -> list[str]:
    """Per-task outcomes: rows ``rows`` passed/failed against columns ``columns`` passed/failed."""
    return table(["", f"{columns} passed", f"{columns} failed"],
                 [[f"{rows} {name}", str(count(ours, True)), str(count(ours, False))]
                  for name, ours in (("passed", True), ("failed", False))])


def _verdict_section(v: VerdictAgreement | None) -> list[str]:
    if v is None:
        return ["_The dataset has no `robust_test_passed`/`legacy_test_passed` columns: one verdict only._", ""]
    return [
        "### Both verdicts", "",
        VERDICT_NOTE, "",
        *_pass_rate_table([("robust", v.rates["robust"]), ("legacy", v.rates["legacy"])]), "",
        "Per-task outcomes (rows: robust, columns: legacy):", "",
        *_outcome_table("robust", "legacy", lambda robust, legacy: v.counts[(robust, legacy)]), "",
        f"Tasks passing under robust only ({len(v.only_robust)}): {_ids(v.only_robust) or 'none'}.", "",
        f"Tasks passing under legacy only ({len(v.only_legacy)}): {_ids(v.only_legacy) or 'none'}.", "",
    ]


def _quantity(value: float | None) -> str:
    # Token counts are whole numbers; times are not.
    if value is None:
        return NA
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _pass_rate_table(series: Sequence[tuple[str, Sequence[PassRate]]]) -> list[str]:
    head = ["group", "rule", "tasks"]
    for name, _ in series:
        suffix = f" ({name})" if name else ""
        head += [f"passed{suffix}", f"pass rate{suffix}"]
    return table(head, [[rate.label, RULES.get(rate.label, ""), str(rate.n_tasks),
                         *(cell for _, rates in series for cell in (str(rates[i].n_passed), pct(rates[i].rate)))]
                        for i, rate in enumerate(series[0][1])])


def _category_table(counts: Sequence[PassRate], name: str, empty: str, *, passed: bool = True) -> list[str]:
    if not counts:
        return [f"_{empty}._"]
    if not passed:
        return table([name, "tasks"], [[f"`{c.label}`", str(c.n_tasks)] for c in counts])
    return table([name, "tasks", "passed", "pass rate"],
                 [[f"`{c.label}`", str(c.n_tasks), str(c.n_passed), pct(c.rate)] for c in counts])


def _summary_table(stats: ReportStats) -> list[str]:
    items = [("prompt tokens", stats.prompt_tokens)]
    if (lengths := stats.completion_lengths) is not None:
        unit, values, passed = lengths.unit, lengths.values, lengths.passed
        items += [(f"completion {unit}", summarize(values)), (f"completion {unit}, passed", summarize(values[passed])),
                  (f"completion {unit}, failed", summarize(values[~passed]))]
    items.append(("generation time per task (s)", stats.generation_time))
    return table(["quantity", "tasks", "mean", "median", "min", "max", "total"],
                 [[label, NA, NA, NA, NA, NA, NA] if s is None else
                  [label, str(s.n), *(_quantity(v) for v in (s.mean, s.median, s.min, s.max, s.total))]
                  for label, s in items])


def _fidelity_line(fidelity: Mapping | None) -> str:
    if not fidelity:
        return "replay fidelity: not recorded (replay-activations ran without a check)"
    return "replay fidelity: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in fidelity.items())


def _layer_section(stats: ReportStats, plots: Mapping[str, str]) -> list[str]:
    out = ["## Activation signal per layer", ""]
    if not stats.layers:
        return out + ["_no activations found (run replay-activations, or pass --activations-dir)._", ""]
    hook = f" at `{stats.hook_point}`" if stats.hook_point else ""
    head = ["layer", "d_model", "passed", "failed", "no activations", "norm AUROC", "projection AUROC (in-sample)",
            "projection AUROC (CV)"]
    out += [
        f"Last-prompt-token residual activation{hook}: its L2 norm, and its projection on the unit "
        "vector along (mean of passed tasks - mean of failed tasks). AUROC: probability that a "
        "passed task scores higher than a failed one (0.5 = no signal).", "",
        AUROC_CAVEAT, "",
        *table(head, [[str(s.layer), str(s.d_model), str(s.n_passed), str(s.n_failed), str(s.n_missing),
                       fmt_auroc(s.norm_auroc), fmt_auroc(s.projection_auroc),
                       f"{fmt_auroc(s.cross_validated.auroc)} ({s.cross_validated.n_folds}-fold)"
                       if s.cross_validated.n_folds else NA] for s in stats.layers]), "",
    ]
    for sep in stats.layers:
        out += _image(f"layer {sep.layer}", plots.get(f"layer_{sep.layer}"))
    return out


def _comparison_section(c: Comparison) -> list[str]:
    base_rules = (f"the {c.base_verdict} verdict." if c.base_verdict != UNKNOWN_VERDICT
                  else "a verdict of unknown rules (no `legacy_test_passed` column: its `test_passed`).")
    out = [
        f"## Comparison with `{c.base_label}` ({c.verdicts})", "",
        f"Ours under the {c.verdict} verdict, the base under {base_rules}"
        + ("" if c.verdict == c.base_verdict else " The rules differ: read the difference with care."), "",
        f"Base dataset: `{c.base_path}`. {c.n_shared} shared tasks "
        f"({c.n_only_ours} only in ours, {c.n_only_base} only in the base); rates below are on the "
        "shared tasks, grouped by our cyclomatic complexity.", "",
        *_pass_rate_table([(c.label, c.rates), (c.base_label, c.base_rates)]), "",
        f"Per-task outcomes (rows: {c.label}, columns: {c.base_label}):", "",
        *_outcome_table(c.label, "base", lambda ours, base: c.count(ours=ours, base=base)), "",
        f"Agreement {pct(c.agreement)}, Cohen's kappa {num(c.cohen_kappa, '.2f')}. "
        "Every shared task is listed in `compare_tasks.csv`.", "",
    ]
    disagree = c.per_task.loc[~c.per_task["agree"]]
    if disagree.empty:
        return out + ["_The two models agree on every shared task._", ""]
    outcome = {True: "pass", False: "fail"}
    return out + [f"Tasks with different outcomes ({len(disagree)}):", "",
                  *table(["task_id", "cc", "group", c.label, c.base_label],
                         [[str(r.task_id), NA if pd.isna(r.cyclomatic_complexity) else str(r.cyclomatic_complexity),
                           str(r.complexity_group or NA), outcome[r.passed], outcome[r.base_passed]]
                          for r in disagree.itertuples(index=False)]), ""]


def _image(alt: str, name: str | None) -> list[str]:
    return [f"![{alt}]({name})", ""] if name else []
