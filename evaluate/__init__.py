"""Evaluation: extract code from completions, run MBPP tests in a sandbox, write the dataset.

Imports flow one way: ``extract`` (pure text) and ``harness`` (runs inside the sandbox,
standard library only) import nothing from the project; ``sandbox`` launches the harness;
``batch`` runs many programs in parallel; ``score`` is the front door that writes the dataset.
"""
