"""``python cli.py report``: summary statistics, plots and report.md from the pipeline's files.

Modules, imports flowing one way (``stage`` uses all the others): ``config`` holds the settings
and the names of the files written, ``load`` reads files, ``stats`` turns inputs into frozen
summaries (the AUROC maths included), ``compare`` sets a base-model dataset beside ours,
``fmt``, ``plots``, ``markdown`` and ``features`` (the SAE-feature section) render, ``stage`` is
the front door (``run(ReportConfig(...))``).
"""
