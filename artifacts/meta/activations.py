"""Keys of ``activations_metadata.json`` and of the compact feature-layer vectors file.

Written by replay (``replay/run.py``); read by evaluate, features and report.
"""

from __future__ import annotations

# One file per run beside task_activations/: the last-prompt-token vectors, at both
# residual sites, of every layer the SAE feature list names (the features stage reads it).
FEATURE_VECTORS_FILE = "feature_layer_vectors.npz"
FV_TASK_ID = "task_id"  # int64 (n_tasks,), ascending
FV_LAYERS = "layers"  # int64 (n_layers,), ascending
FV_RESID_PRE = "resid_pre"  # float32 (n_tasks, n_layers, d_model): input of block L
FV_RESID_POST = "resid_post"  # float32 (n_tasks, n_layers, d_model): output of block L
