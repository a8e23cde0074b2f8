"""``python cli.py features``: does each SAE feature of the base model's analysis separate this run's outcomes?

``stage.run(FeaturesConfig(...))`` is the front door; ``sae`` finds, reads or builds each layer's SAE,
``runs`` and ``tokens`` read a run, ``readout`` uses a loaded SAE, ``table`` and ``verdict`` score.
"""
