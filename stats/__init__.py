"""Statistics of the SAE feature read-out, shared by the ``features`` stage and the report (the one
place either computes an AUROC or deals tasks to folds).

Below every stage package: imports numpy, scipy, scikit-learn and nothing of this project's
stages. Every statistic is NaN, never an exception, when a class has fewer than
``labels.MIN_PER_CLASS`` tasks (a weak model may pass none of 20 problems).

| module | what |
| --- | --- |
| ``labels`` | checks of scores and labels, the minimum class size, columns grouped by labelling |
| ``auroc`` | AUROC: one feature (scikit-learn), many at once (ranks), weighted (for resamples) |
| ``bootstrap`` | stratified percentile bootstrap interval of AUROC |
| ``paired`` | paired bootstrap of the AUROC difference between two runs on shared tasks |
| ``permutation`` | one-sided label-permutation p-values of AUROC |
| ``multiple_testing`` | Benjamini-Hochberg q-values |
| ``null_latents`` | random null latents of an SAE and an AUROC's percentile among theirs |
| ``folds`` | stratified cross-validation folds (``StratifiedKFold``), seeded |
| ``f1`` | F1 of a threshold rule: the best threshold and its cross-validated F1 |
| ``probe`` | cross-validated logistic-regression probe: out-of-fold AUROC, interval, p-value |
| ``sae_fit`` | a JumpReLU SAE's fit on vectors: fraction of variance unexplained and L0 |
"""
