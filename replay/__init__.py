"""Stage 2: replay the generated token ids through TransformerLens and store residual activations.

Modules, imports flowing one way (``stage`` is the front door, ``config`` its settings):
``hook_sites`` (which residual hook) <- ``generations`` (read the tokens) <- ``model`` (load) <-
``capture`` (batched forward, only the kept positions and hooks) <- ``store`` (per-task npz and
safetensors files) <- ``feature_vectors`` (the compact last-prompt-token file of every listed
layer) <- ``verify`` (against Hugging Face) <- ``stage``.

From a notebook: ``from replay.config import ReplayConfig; from replay.stage import run;
run(ReplayConfig(data_dir=..., layers="16,19"))``.
"""
