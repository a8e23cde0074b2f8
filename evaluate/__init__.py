"""Evaluation: extract code from completions, run MBPP tests in a sandbox, write the dataset.

Imports flow one way: ``extract`` (pure text) and ``harness`` (runs inside the sandbox,
standard library only) import nothing from the project; ``values`` decodes what the harness
sends and ``verdict`` names the outcomes and decides them (pure); ``sandbox`` launches the
harness; ``batch`` runs many programs in parallel; ``score`` reads the inputs and runs the
programs; ``dataset`` builds the table, ``metadata.json`` and ``phase_output.json``; ``config``
holds the stage's settings and ``stage.run(config)`` is the front door (the CLI calls it too).
"""
