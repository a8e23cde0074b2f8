"""``python cli.py features``: does each SAE feature of the base model's analysis separate this run's outcomes?

Modules, imports flowing one way (``stage`` uses the others): ``config`` the settings,
``sae_source`` where each layer's SAE comes from, ``stand_in`` the random stand-in SAEs,
``sae`` a layer's whole SAE (read or built), ``vectors`` and ``runs`` a run's last-prompt
vectors and labels, ``tokens`` a sample of its stored token vectors, ``readout`` everything a
loaded SAE is needed for (fit, listed and null activations, probes), ``score`` the statistics
of the features' columns (all from ``stats``), ``verdict`` the rules of the verdict, ``table``
the score table, ``compare`` the paired differences with a comparison run, ``stage`` the front
door (``run(FeaturesConfig(...))``).
"""
