"""Tests of the statistics library (``stats/``) and the demo's stand-in SAE."""
