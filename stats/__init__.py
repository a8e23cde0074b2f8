"""Statistics of the SAE feature read-out, shared by the ``features`` stage and the report.

Imports numpy, scipy and scikit-learn only. Every statistic is NaN, never an exception, when a
class has fewer than ``labels.MIN_PER_CLASS`` tasks (a weak model may pass none of 20 problems).
"""
