"""The verdict on each listed feature x site: does the base model's feature carry over to this run?

Rules, in order (the first that applies decides; the report prints them from the metadata):

1. *cannot tell* when the feature was not scored;
2. *cannot tell* when a class has fewer than :data:`MIN_CLASS_TASKS` tasks, or the layer's SAE does
   not fit this run's last-prompt vectors at the site: FVU above :data:`FVU_BOUND`, or with a
   reference run (``--compare-activations``, normally the base model the SAEs were trained on)
   above its FVU at the same layer and site plus :data:`FVU_MARGIN`, never above :data:`FVU_CEILING`;
3. *carries over* when q < :data:`ALPHA` and the AUROC interval lies above 0.5;
4. *does not carry over* when q >= :data:`ALPHA`;
5. *cannot tell* otherwise (q < ALPHA but the interval reaches 0.5: the tests disagree).

Why these numbers:

- ``ALPHA`` 0.05: the false discovery rate of the BH q-values over all feature x site rows of the run.
- ``FVU_BOUND`` 0.5: the SAE must explain half the variance of the vectors the features are read
  from, else an activation near zero no longer means "feature absent". Loose on purpose: last-prompt
  vectors are measured against their own (small) spread, so FVU reads higher than GemmaScope's
  published values. A random stand-in SAE reads far above 1.
- ``FVU_MARGIN`` 0.1: against the base model's run (same tasks, positions and site, which removes
  that inflation), at most 10 points more variance unexplained. Kissane et al. ("SAEs (usually)
  transfer between base and chat models") judge transfer this way; it failed for Gemma v1 2B.
- ``FVU_CEILING`` 1: an SAE no better than the vectors' mean does not describe them.
- ``MIN_CLASS_TASKS`` 10: with fewer tasks in a class the bootstrap understates the uncertainty.
"""

from __future__ import annotations

import math

from artifacts.schema import features as fm

ALPHA = 0.05
FVU_BOUND = 0.5
FVU_MARGIN = 0.1
FVU_CEILING = 1.0
MIN_CLASS_TASKS = 10


def rules(reference: str | None) -> dict:
    """The metadata's ``verdict_rules`` block: the constants, and the reference run's label (or None)."""
    return {fm.RULE_ALPHA: ALPHA, fm.RULE_FVU_BOUND: FVU_BOUND, fm.RULE_FVU_MARGIN: FVU_MARGIN,
            fm.RULE_FVU_CEILING: FVU_CEILING, fm.RULE_MIN_CLASS: MIN_CLASS_TASKS, fm.RULE_REFERENCE: reference}


def sae_fits(fvu: float, reference_fvu: float) -> tuple[bool, str]:
    """Whether the SAE fits (rule 2), and the comparison in words."""
    if math.isnan(fvu):
        return False, "no SAE fit on these vectors"
    if not math.isnan(reference_fvu) and reference_fvu + FVU_MARGIN <= FVU_CEILING:
        limit, what = reference_fvu + FVU_MARGIN, f"the reference's {reference_fvu:.3g} + {FVU_MARGIN}"
    elif not math.isnan(reference_fvu):
        limit, what = FVU_CEILING, f"{FVU_CEILING} (the reference's {reference_fvu:.3g} + {FVU_MARGIN} is above it)"
    else:
        limit, what = FVU_BOUND, f"{FVU_BOUND}"
    if fvu <= limit:
        return True, f"SAE fits (FVU {fvu:.3g} <= {what})"
    return False, f"SAE does not fit (FVU {fvu:.3g} > {what})"


def decide(*, scored: bool, reason: str | None, n_passed: int, n_failed: int, q_value: float, ci_low: float,
           fvu: float, reference_fvu: float = math.nan) -> tuple[str, str]:
    """``(verdict, reason)`` of one feature x site by the rules of the module docstring.

    A *cannot tell* names every reason that applies (an unfitting SAE and a small class, say).
    """
    if not scored:
        return fm.VERDICT_CANNOT_TELL, f"not scored: {reason}"
    fits, fit_text = sae_fits(fvu, reference_fvu)
    unknown = [] if fits else [fit_text]
    smaller = min(n_passed, n_failed)
    if smaller < MIN_CLASS_TASKS:
        name = "passed" if n_passed <= n_failed else "failed"
        unknown.append(f"only {smaller} {name} task(s), fewer than {MIN_CLASS_TASKS}")
    if unknown:
        return fm.VERDICT_CANNOT_TELL, "; ".join(unknown)
    if q_value < ALPHA and ci_low > 0.5:
        return fm.VERDICT_CARRIES_OVER, f"q {q_value:.3g} < {ALPHA}, interval above 0.5, {fit_text}"
    if not q_value < ALPHA:
        return fm.VERDICT_DOES_NOT, f"q {q_value:.3g} >= {ALPHA}, {fit_text}"
    return fm.VERDICT_CANNOT_TELL, f"q {q_value:.3g} < {ALPHA} but the interval reaches 0.5 (low {ci_low:.3f})"
