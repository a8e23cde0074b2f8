"""Benchmarks: each module compares our path against a baseline in the same run (ratios)."""
