"""The generate stage: greedy completions from vLLM's offline engine, stored as exact token ids.

``run(GenerateConfig(...))`` (:mod:`gen.stage`) is what ``python cli.py generate`` and a notebook
call; ``stage`` uses the other modules, none uses it.
"""
