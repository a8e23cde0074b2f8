"""The generate stage: greedy completions from vLLM's offline engine, stored as exact token ids.

``run(GenerateConfig(...))`` (:mod:`gen.stage`) is what ``python cli.py generate`` and a
notebook call. Modules, imports flowing one way (``stage`` uses the others; none uses it):
``config`` (the settings), ``plan`` (rows, prompts, resolved model), ``model_source`` (which
checkpoint, its revision and hash), ``tokenize`` (prompt text to ids with exactly one BOS),
``stop_tokens`` (stop ids under a stop policy), ``context`` (the context length),
``device_policy`` (eager mode, CPU environment, determinism per device), ``engine`` (the
streaming engine protocol; imports nothing from ``gen``), ``vllm_engine`` (vLLM behind it),
``ray_engine`` (vLLM replicas as a Ray Data LLM job behind it), ``factory`` (the default
engine factory: embedded, or Ray), ``store`` (the resumable parquet), ``stream`` (submit
everything, commit as completions finish) and ``metadata`` (generations_metadata.json).
"""
