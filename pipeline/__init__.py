"""The whole pipeline as one resumable command: split, generate, replay, evaluate, report."""
