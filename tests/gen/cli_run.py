"""Run ``cli.py`` in a child process, as a user would (vLLM's workers need a real main module)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Small KV cache: tests run beside other work on small machines.
TEST_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "TOKENIZERS_PARALLELISM": "false"}


def cli_command(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "cli.py"), *args]


def cli_env() -> dict[str, str]:
    return {**os.environ, **TEST_ENV}


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout)
