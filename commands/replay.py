"""``python cli.py replay-activations``: store residual activations of the generated tokens."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.layout import GENERATIONS_FILE, Layout
from commands.options import data_dir_option, layer_folders, layers_options, translate_errors
from artifacts.feature_list import resolve_layers
from artifacts.device import DEVICE_CHOICES, DTYPE_NAMES
from replay.hook_sites import DEFAULT_HOOK_SITE, HookSite
from replay.store import DEFAULT_ACTIVATION_FORMAT, ActivationFormat


@click.command("replay-activations")
@click.option(
    "--generations",
    "generations_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Generations parquet (its metadata JSON beside it) [default: OUTPUT_DIR/{GENERATIONS_FILE}].",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Stage folder; files go to OUTPUT_DIR/activations/ [default: DATA_DIR/phase7_3].",
)
@click.option("--model", default=None, help="Model name or folder [default: the generations' model; another one warns].")
@click.option(
    "--dtype",
    type=click.Choice(DTYPE_NAMES),
    default=None,
    help="Replay dtype [default: the dtype the generations were made with].",
)
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True, help="auto: cuda when visible.")
@click.option(
    "--hook-point",
    type=click.Choice([site.value for site in HookSite]),
    default=DEFAULT_HOOK_SITE.value,
    show_default=True,
    help="resid_pre: input of block L, HF hidden_states[L] (what the earlier phases captured and the "
    "features were selected on); resid_post: its output (GemmaScope's SAE site). Every .npz also keeps the "
    "other site's last-prompt-token vector.",
)
@click.option(
    "--activation-format",
    type=click.Choice([f.value for f in ActivationFormat]),
    default=DEFAULT_ACTIVATION_FORMAT.value,
    show_default=True,
    help="Per-task files: {task_id}_layer_{L}.npz, {task_id}_layer_{L}.safetensors (tensor 'activation', "
    "(1, d_model)), or both.",
)
@layers_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Sequences per forward, grouped by length [default: 8 for float32 on cuda (4.7x faster there); "
    "else 1: slower batched on CPU, and in bfloat16/float16 batched kernels round differently (~2e-2)].",
)
@click.option(
    "--verify",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Check N sampled tasks against Hugging Face hidden states and report replay fidelity.",
)
@click.option("--overwrite", is_flag=True, help="Redo tasks whose files exist; allow other model/dtype/hook point.")
@data_dir_option
@translate_errors
def replay(
    generations_path: Path | None,
    output_dir: Path | None,
    model: str | None,
    dtype: str | None,
    device: str,
    hook_point: str,
    activation_format: str,
    phase2_10_dir: Path | None,
    phase2_5_dir: Path | None,
    layers: str | None,
    batch_size: int | None,
    verify: int,
    overwrite: bool,
    data_dir: Path,
) -> None:
    """Replay prompt + completion token ids through TransformerLens; store activations at the best layers,
    and the last-prompt-token vectors of every layer the SAE feature list names."""
    layout = Layout(data_dir)
    output_dir = output_dir or layout.phase7_3
    from replay.run import replay_activations  # torch and TransformerLens: only when the command runs

    result = replay_activations(
        generations_path=generations_path or output_dir / GENERATIONS_FILE,
        output_dir=output_dir,
        best_layers=resolve_layers(layer_folders(layout, phase2_10_dir, phase2_5_dir), layers),
        model=model,
        dtype=dtype,
        device=device,
        hook_point=hook_point,
        activation_format=activation_format,
        batch_size=batch_size,
        verify=verify,
        overwrite=overwrite,
    )
    meta = result.metadata
    speed = f"{result.tokens_per_s:.0f} tokens/s" if result.tokens_per_s else "nothing to replay"
    filled = f", {result.n_feature_vectors_replayed} of them run again for the feature-layer vectors only" if result.n_feature_vectors_replayed else ""
    click.echo(
        f"replayed {result.n_replayed} of {result.n_tasks} tasks ({result.n_skipped} already stored{filled}), "
        f"{result.n_tokens_replayed} tokens in {result.wall_time_s:.1f}s ({speed}); "
        f"{meta['hook_point']} layers {meta['layers']} ({meta['activation_format']}), {meta['dtype']} on {meta['device']} "
        f"-> {result.activations_dir}; feature-layer vectors of layers {meta['feature_vectors']['layers']} "
        f"-> {result.feature_vectors_path.name}"
    )
    if result.verify is not None:
        v = result.verify
        fidelity = f"{v.fidelity:.4f} ({v.n_argmax_matches}/{v.n_completion_positions})" if v.fidelity is not None else "n/a (no completion tokens)"
        sequence = f", {v.sequence_max_rel_error:.2e} (sequence, float16)" if v.sequence_max_rel_error is not None else ""
        click.echo(
            f"verify {v.n_tasks} tasks vs Hugging Face: max relative error {v.max_rel_error:.2e} ({meta['hook_point']}, "
            f"float32), resid_pre {v.resid_pre_max_rel_error:.2e}, resid_post {v.resid_post_max_rel_error:.2e}{sequence}; "
            f"replay fidelity {fidelity}"
        )
