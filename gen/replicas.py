"""Data parallelism: independent vLLM replicas, each on its own slice of the devices.

vLLM 0.32's ``LLM`` refuses ``data_parallel_size > 1`` inside one process (its offline data
parallelism needs one launcher process per rank). Gemma-2 models are dense, so replicas
need no expert exchange: each rank here is a child process owning ``tensor_parallel_size``
GPUs (``CUDA_VISIBLE_DEVICES``) or an equal share of the CPU cores
(``VLLM_CPU_OMP_THREADS_BIND``) and its own engine. The parent deals every chunk
round-robin over the ranks and puts the completions back in request order, so the chunked,
atomic commits of the generate stage work unchanged. Beyond one node, use tensor
parallelism over Ray (vLLM's ``distributed_executor_backend="ray"``) instead.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Sequence
from typing import Any

from artifacts.errors import InputError
from gen.engine import Completion, EngineConfig

CUDA_DEVICES_ENV = "CUDA_VISIBLE_DEVICES"
CPU_BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"


def replica_envs(size: int, *, tensor_parallel_size: int, device: str) -> list[dict[str, str]]:
    """The environment of each replica: its devices or cores.

    Raises:
        InputError: fewer GPUs (or cores) than ``size * tensor_parallel_size``.
    """
    if device in ("cuda", "rocm"):
        visible = os.environ.get(CUDA_DEVICES_ENV)
        if visible:
            devices = [d for d in visible.split(",") if d.strip()]
        else:
            import torch

            devices = [str(i) for i in range(torch.cuda.device_count())]
        need = size * tensor_parallel_size
        if len(devices) < need:
            raise InputError(
                f"--data-parallel-size {size} x --tensor-parallel-size {tensor_parallel_size} needs {need} GPUs, "
                f"{len(devices)} visible"
            )
        per = tensor_parallel_size
        return [{CUDA_DEVICES_ENV: ",".join(devices[r * per : (r + 1) * per])} for r in range(size)]
    if device == "cpu":
        cores = sorted(os.sched_getaffinity(0))
        per = len(cores) // size
        if per < 1:
            raise InputError(f"--data-parallel-size {size}: only {len(cores)} CPU cores available")
        return [{CPU_BIND_ENV: ",".join(str(c) for c in cores[r * per : (r + 1) * per])} for r in range(size)]
    raise InputError(f"--data-parallel-size > 1 is not supported on {device}")


def _serve(config: EngineConfig, env: dict[str, str], conn: Any) -> None:
    """Child process: build one engine under ``env``, then answer batches until told to stop."""
    os.environ.update(env)  # before vLLM (and CUDA) initialize in this process
    from gen.engine import VllmEngine

    try:
        engine = VllmEngine(config)
    except BaseException as exc:  # report any start failure to the parent, then exit
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", engine.max_num_seqs))
    while True:
        prompts = conn.recv()
        if prompts is None:
            engine.close()
            conn.send(("closed", None))
            return
        try:
            conn.send(("ok", engine.generate(prompts)))
        except BaseException as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ReplicaPool:
    """``size`` vLLM replicas behind the :class:`gen.engine.Engine` protocol."""

    def __init__(self, config: EngineConfig, *, size: int, device: str) -> None:
        envs = replica_envs(size, tensor_parallel_size=config.tensor_parallel_size, device=device)
        ctx = mp.get_context("spawn")  # fork would copy a half-initialized CUDA or OpenMP state
        self.conns = []
        self.procs = []
        for env in envs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(config, env, child), daemon=False)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.envs = envs
        seqs = [self._receive(conn) for conn in self.conns]
        self.max_num_seqs = sum(s for s in seqs if s) or None

    def _receive(self, conn: Any) -> Any:
        try:
            status, payload = conn.recv()
        except EOFError as exc:
            self.close()
            raise RuntimeError("a data-parallel replica exited unexpectedly") from exc
        if status == "error":
            self.close()
            raise RuntimeError(f"data-parallel replica failed: {payload}")
        return payload

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Completion]:
        size = len(self.conns)
        # A chunk smaller than the pool leaves some replicas idle this round.
        busy = [(conn, shard) for rank, conn in enumerate(self.conns) if (shard := list(range(rank, len(prompts), size)))]
        for conn, shard in busy:
            conn.send([[int(i) for i in prompts[j]] for j in shard])
        results: list[Completion | None] = [None] * len(prompts)
        for conn, shard in busy:
            for j, completion in zip(shard, self._receive(conn)):
                results[j] = completion
        return [r for r in results if r is not None]

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs):
            if proc.is_alive():
                try:
                    conn.send(None)
                    conn.recv()
                except (EOFError, OSError, BrokenPipeError):
                    pass
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
        self.conns, self.procs = [], []
