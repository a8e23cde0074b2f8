"""``python cli.py features``: score the SAE analysis' listed features on this run's activations.

Modules, imports flowing one way (``stage`` uses the others): ``config`` the settings,
``sae_source`` where each layer's SAE comes from, ``stand_in`` the random stand-in SAEs,
``sae`` reading the listed columns and the JumpReLU encoding, ``vectors`` and ``runs`` a
run's vectors and labels, ``score`` the statistics of one feature, ``table`` the score table,
``stage`` the front door (``run(FeaturesConfig(...))``).
"""
