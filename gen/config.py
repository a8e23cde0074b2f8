"""Settings of the generate stage (``python cli.py generate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from artifacts.device import DTYPE_NAMES
from artifacts.layout import DEFAULT_MODEL, GENERATIONS_FILE, GENERATIONS_METADATA_FILE
from artifacts.settings import StageConfig, setting
from gen.stop_tokens import DEFAULT_STOP_POLICY, StopPolicy
from problems.prompts import DEFAULT_PROMPT_STYLE, PromptStyle

DEFAULT_MAX_NEW_TOKENS = 2000
DEFAULT_SEED = 0
DEFAULT_COMMIT_EVERY = 16
DEFAULT_COMMIT_SECONDS = 30.0
EMBEDDED = "embedded"
RAY = "ray"
BACKENDS = (EMBEDDED, RAY)
CHUNK_SIZE_DEPRECATION = (
    "--chunk-size is deprecated: generation now streams every prompt at once and commits as completions "
    "finish; it is read as --commit-every {value}"
)


@dataclass(frozen=True)
class GenerateConfig(StageConfig):
    """Write generations.parquet and generations_metadata.json (resumes an interrupted run)."""

    STAGE: ClassVar[str] = "generate"

    model: str = setting(DEFAULT_MODEL, help="Hugging Face hub id or local checkpoint folder.")
    revision: str | None = setting(None, help="Hub revision (branch, tag or commit) of --model.")
    problems_path: Path | None = setting(
        None, flag="--problems", identity=False,  # its content is an input of the record
        help="Problems parquet [default: DATA_DIR/phase0_1/validation_mbpp.parquet].")
    start: int | None = setting(None, minimum=0, selects=True, help="First row of the problems file (0-indexed).")
    end: int | None = setting(None, minimum=0, selects=True, help="Last row of the problems file (inclusive).")
    limit: int | None = setting(None, minimum=1, selects=True, help="At most this many problems (after --start).")
    max_new_tokens: int = setting(DEFAULT_MAX_NEW_TOKENS, minimum=1, help="Generation budget per problem.")
    prompt_style: str = setting(
        DEFAULT_PROMPT_STYLE.value, choices=tuple(s.value for s in PromptStyle),
        help="raw prompt text; the model's chat template; or raw-double-assert, the earlier phases' buggy "
        "prompt ('assert assert ...'), to compare with data made before its fix.")
    stop: str = setting(
        DEFAULT_STOP_POLICY.value, choices=tuple(s.value for s in StopPolicy),
        help="end-of-turn: every eos id of the model's generation config; eos-only: the tokenizer's EOS alone, "
        "as the earlier phases and the 7.6 steering code (runs past <end_of_turn>).")
    dtype: str | None = setting(
        None, choices=DTYPE_NAMES, help="Weights and activations dtype [default: float32 on CPU, bfloat16 on GPU].")
    max_model_len: int | None = setting(None, minimum=2, help="Context length for vLLM [default: the model's].")
    tensor_parallel_size: int = setting(
        1, minimum=1, identity=False, help="GPUs per model replica (vLLM tensor parallelism).")
    data_parallel_size: int = setting(
        1, minimum=1, identity=False,
        help="Model replicas, each on its own GPUs or share of the cores; above 1 the Ray backend runs them.")
    backend: str = setting(
        EMBEDDED, choices=BACKENDS, identity=False,  # the same token ids either way
        help="embedded: one vLLM engine in this process; ray: vLLM replicas as a Ray Data LLM job on the cluster "
        "at RAY_ADDRESS, else on a local Ray started for the run (needs the cluster extra).")
    output_dir: Path | None = setting(None, identity=False, help="Output folder [default: DATA_DIR/phase7_3].")
    deterministic: bool = setting(
        False, help="Prefix caching off and vLLM's batch-invariant mode where the device supports it.")
    enforce_eager: bool | None = setting(
        None, negatable=True, identity=False,
        help="Skip vLLM's compilation and graph capture [default: on for CPU (compiling cost minutes there "
        "and decoded no faster), off for GPUs].")
    commit_every: int = setting(
        DEFAULT_COMMIT_EVERY, minimum=1, identity=False,
        help="Commit finished completions atomically once this many are waiting.")
    commit_seconds: float = setting(
        DEFAULT_COMMIT_SECONDS, minimum=0, min_open=True, identity=False,
        help="...or once this many seconds have passed since the last commit.")
    chunk_size: int | None = setting(
        None, minimum=1, hidden=True, identity=False, help="Deprecated alias of --commit-every.")
    seed: int = setting(DEFAULT_SEED, help="vLLM seed (greedy decoding does not sample).")

    @property
    def problems(self) -> Path:
        return self.problems_path or self.layout.problems

    @property
    def folder(self) -> Path:
        return self.output_dir or self.layout.phase7_3

    @property
    def commits_every(self) -> int:
        """``--commit-every``, or the deprecated ``--chunk-size`` when given."""
        return self.chunk_size if self.chunk_size is not None else self.commit_every

    @property
    def uses_ray(self) -> bool:
        """``--backend ray``, or more than one replica (vLLM's ``LLM`` runs one engine per process)."""
        return self.backend == RAY or self.data_parallel_size > 1

    def inputs(self) -> list[Path]:
        return [self.problems]

    def outputs(self) -> list[Path]:
        return [self.folder / GENERATIONS_FILE, self.folder / GENERATIONS_METADATA_FILE]

    def record_dir(self) -> Path:
        return self.folder
