"""``python cli.py report``: summary statistics, plots and report.md from the pipeline's files.

Modules, imports flowing one way (``build`` uses all the others):
``load`` reads files, ``separation`` is the AUROC maths, ``stats`` turns inputs into frozen
summaries, ``compare`` sets a base-model dataset beside ours, ``plots`` and ``markdown`` render,
``build`` is the front door.
"""
