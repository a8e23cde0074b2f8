"""The generate stage: greedy completions from vLLM's offline engine, stored as exact token ids.

Modules, imports flowing one way (``generate`` uses the others; none uses ``generate``):
``model_source`` (which checkpoint, its revision and hash), ``tokenize`` (prompt text to
ids with exactly one BOS), ``stop_tokens`` (end-of-turn ids from the generation config),
``engine`` (building vLLM with device defaults), ``replicas`` (data parallelism),
``store`` (the chunked, resumable parquet), ``chunks`` (running chunks through an engine),
``generate`` (the front door), ``hf_reference`` (Hugging Face greedy, the baseline) and
``demo_model`` (the SmolLM2 demo checkpoint).
"""
