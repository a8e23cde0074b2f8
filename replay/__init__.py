"""Stage 2: replay the generated token ids through TransformerLens and store residual activations.

``stage.run(config.ReplayConfig(...))`` is the front door; ``generations`` reads the tokens,
``model`` loads the bridge, ``capture`` runs it, ``store`` and ``feature_vectors`` write the
files, ``verify`` checks them against Hugging Face.
"""
