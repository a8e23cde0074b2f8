"""``python cli.py features``: score the SAE analysis' listed features on this run's activations."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.layout import ACTIVATIONS_SUBDIR, DATASET_FILE, DEMO_SAES_SUBDIR, Layout
from artifacts.schema import features as fm
from commands.options import analysis_dirs_options, data_dir_option, layer_folders, translate_errors
from artifacts.feature_list import find_best_layers
from features.sae_source import DEFAULT_SAE_REPO, parse_sae_options


@click.command("features")
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Evaluated dataset (task_id, test_passed) [default: DATA_DIR/phase7_3/{DATASET_FILE}].")
@click.option("--activations-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="This run's activations folder: feature_layer_vectors.npz, else task_activations/ "
              f"[default: {ACTIVATIONS_SUBDIR}/ beside the dataset].")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Destination [default: DATA_DIR/phase7_3/{fm.FEATURES_SUBDIR}].")
@analysis_dirs_options
@click.option("--sae", "sae_options", multiple=True, metavar="LAYER=PATH",
              help="A local SAE file for one layer (GemmaScope params.npz, or the compact form); repeat per layer. "
              "Wins over the hub and --demo-saes.")
@click.option("--sae-repo", default=DEFAULT_SAE_REPO, show_default=True,
              help="Hugging Face repository in GemmaScope's layout (layer_L/width_16k/average_l0_N/params.npz).")
@click.option("--demo-saes", is_flag=True,
              help=f"Use random stand-in SAEs (built when missing, in DATA_DIR/models/{DEMO_SAES_SUBDIR}/) instead of "
              "the hub: for the demo model, which GemmaScope does not cover. The report marks them as stand-ins.")
@click.option("--require-all", is_flag=True,
              help="Fail when a layer's SAE cannot be had, instead of skipping its features.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the bootstrap and the cross-validation folds.")
@click.option("--compare-activations", "compare_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Another run's task_activations folder (e.g. the base model's): score the same features there too.")
@click.option("--compare-dataset", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="That run's evaluated dataset "
              "[default: the one dataset*.parquet two folders above its task_activations].")
@click.option("--compare-site", type=click.Choice(fm.HOOK_POINTS), default=None,
              help="Site of that run's arr_0 when its activations_metadata.json does not name one.")
@click.option("--overwrite", is_flag=True, help="Recompute even when the inputs are unchanged.")
@data_dir_option
@translate_errors
def features(
    dataset_path: Path | None,
    activations_dir: Path | None,
    output_dir: Path | None,
    phase2_10_dir: Path | None,
    phase2_5_dir: Path | None,
    sae_options: tuple[str, ...],
    sae_repo: str,
    demo_saes: bool,
    require_all: bool,
    seed: int,
    compare_dir: Path | None,
    compare_dataset: Path | None,
    compare_site: str | None,
    overwrite: bool,
    data_dir: Path,
) -> None:
    """AUROC (95% bootstrap interval), firing rate and cross-validated F1 of each listed SAE feature vs test_passed.

    The feature list is the one that gave the best layers (Phase 2.10, else 2.5); each of its
    layers' GemmaScope SAE encodes the last-prompt-token vectors at resid_pre and resid_post.
    """
    from features.run import score_features  # numpy and the SAE readers: only when the command runs

    layout = Layout(data_dir)
    dataset_path = dataset_path or layout.phase7_3 / DATASET_FILE
    feature_list = Path(find_best_layers(layer_folders(layout, phase2_10_dir, phase2_5_dir)).source)
    result = score_features(
        dataset_path=dataset_path,
        activations_dir=activations_dir or dataset_path.parent / ACTIVATIONS_SUBDIR,
        output_dir=output_dir or layout.phase7_3 / fm.FEATURES_SUBDIR,
        feature_list_path=feature_list,
        sae_paths=parse_sae_options(sae_options),
        sae_repo=sae_repo,
        demo_saes_dir=layout.demo_saes if demo_saes else None,
        require_all=require_all,
        seed=seed,
        compare_activations_dir=compare_dir,
        compare_dataset_path=compare_dataset,
        compare_site=compare_site,
        overwrite=overwrite,
    )
    meta = result.metadata
    for skipped in meta[fm.SKIPPED_LAYERS]:
        click.echo(f"warning: layer {skipped['layer']} not scored: {skipped['reason']}", err=True)
    what = "inputs unchanged, kept the stored scores" if result.reused else f"scored in {meta[fm.WALL_TIME_S]:.1f}s"
    stand_in = " (demo stand-in SAEs, not GemmaScope)" if meta[fm.STAND_IN_SAES] else ""
    click.echo(
        f"features: {meta[fm.N_SCORED]} of {len(result.scores)} feature x hook-point rows scored on "
        f"{meta[fm.N_TASKS]} tasks ({meta[fm.N_PASSED]} passed){stand_in}; {what} -> {result.scores_path}"
    )
    if result.compare_scores is not None:
        compare = meta[fm.COMPARE]
        click.echo(
            f"compare {compare[fm.COMPARE_LABEL]}: {int(result.compare_scores['scored'].sum())} rows scored on "
            f"{compare[fm.N_TASKS]} tasks ({compare[fm.N_PASSED]} passed) -> {result.compare_path}"
        )
