"""Data parallelism: independent vLLM replicas fed from one shared queue of pending tasks.

vLLM 0.32's ``LLM`` refuses ``data_parallel_size > 1`` inside one process (its offline data
parallelism needs one launcher process per rank). Gemma-2 models are dense, so replicas
need no expert exchange: each rank here is a child process owning ``tensor_parallel_size``
GPUs (``CUDA_VISIBLE_DEVICES``) or an equal share of the CPU cores
(``VLLM_CPU_OMP_THREADS_BIND``) and its own streaming engine.

:class:`ReplicaPool` serves the same streaming protocol as one engine
(:class:`gen.engine.Engine`), so the generate stage's driver and its commits are the same
for one engine and for many: ``add_request`` puts a task in the pool's queue (in the
parent); each ``step`` first tops every replica up from that queue, the least loaded first,
to at most its engine's ``max_num_seqs`` requests in flight, then returns whatever any
replica finished. A replica that finishes early therefore takes the next pending tasks
instead of idling while another works through a fixed share, and the parent commits every
completion through the one output store. Beyond one node, use tensor parallelism over Ray
(vLLM's ``distributed_executor_backend="ray"``) instead.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from artifacts.errors import InputError
from gen.engine import Completion, Engine, EngineConfig

EngineMaker = Callable[[EngineConfig], Engine]

CUDA_DEVICES_ENV = "CUDA_VISIBLE_DEVICES"
CPU_BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"
# In-flight cap per replica when its engine does not say (vLLM 0.32's CPU default).
FALLBACK_MAX_NUM_SEQS = 256
# How long one pool step waits for a replica before returning nothing, so that the
# driver's time-based commits still happen while every replica is busy.
STEP_WAIT_S = 1.0


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


def _serve(config: EngineConfig, env: dict[str, str], conn: Connection, make_engine: EngineMaker | None) -> None:
    """Child process: one streaming engine under ``env`` (``make_engine``, default :class:`VllmEngine`).

    Messages in: a list of ``(request_id, prompt_token_ids)`` to add, or None to stop.
    Messages out: ``("ready", max_num_seqs)``, ``("done", [Completion, ...])`` after every
    step that finished something, ``("error", text)``, ``("closed", None)``.
    """
    os.environ.update(env)  # before vLLM (and CUDA) initialize in this process
    if make_engine is None:
        from gen.vllm_engine import VllmEngine as make_engine

    try:
        engine = make_engine(config)
    except BaseException as exc:  # report any start failure to the parent, then exit
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", engine.max_num_seqs))
    try:
        while True:
            # Block for work only when idle; otherwise take what arrived and keep stepping.
            while conn.poll(0) or not engine.has_unfinished_requests():
                message = conn.recv()
                if message is None:
                    engine.close()
                    conn.send(("closed", None))
                    return
                for request_id, ids in message:
                    engine.add_request(request_id, ids)
            done = engine.step()
            if done:
                conn.send(("done", done))
    except (EOFError, BrokenPipeError):  # the parent is gone
        return
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ReplicaPool:
    """``size`` vLLM replicas behind the streaming :class:`gen.engine.Engine` protocol.

    Args:
        config: every replica's engine configuration.
        size: number of replicas (child processes).
        device: ``cuda``/``rocm`` (GPUs sliced by ``tensor_parallel_size``) or ``cpu`` (cores split).
        make_engine: what each replica runs; default :class:`gen.vllm_engine.VllmEngine` (the
            tests pass a scripted engine, which must be importable by name in a fresh process).
    """

    def __init__(
        self, config: EngineConfig, *, size: int, device: str, make_engine: EngineMaker | None = None
    ) -> None:
        envs = replica_envs(size, tensor_parallel_size=config.tensor_parallel_size, device=device)
        ctx = mp.get_context("spawn")  # fork would copy a half-initialized CUDA or OpenMP state
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for env in envs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(config, env, child, make_engine), daemon=False)
            proc.start()
            # Only the child holds its end: when it exits, recv() here raises EOFError instead of waiting forever.
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self.envs = envs
        seqs = [self._receive(conn)[1] for conn in self.conns]
        self.capacity = [int(s) if s else FALLBACK_MAX_NUM_SEQS for s in seqs]
        self.max_num_seqs: int | None = sum(self.capacity)
        self.in_flight = [0] * len(self.conns)
        self.pending: deque[tuple[str, list[int]]] = deque()

    def _receive(self, conn: Connection) -> tuple[str, Any]:
        try:
            status, payload = conn.recv()
        except EOFError as exc:
            self.close()
            raise RuntimeError("a data-parallel replica exited unexpectedly") from exc
        if status == "error":
            self.close()
            raise RuntimeError(f"data-parallel replica failed: {payload}")
        return status, payload

    def add_request(self, request_id: str, prompt_token_ids: Sequence[int]) -> None:
        self.pending.append((request_id, [int(i) for i in prompt_token_ids]))

    def has_unfinished_requests(self) -> bool:
        return bool(self.pending) or any(self.in_flight)

    def _dispatch(self) -> None:
        """Top the replicas up from the shared queue, least loaded first, up to each one's capacity."""
        batches: list[list[tuple[str, list[int]]]] = [[] for _ in self.conns]
        while self.pending:
            rank = min(range(len(self.conns)), key=lambda r: (self.in_flight[r] + len(batches[r])) / self.capacity[r])
            if self.in_flight[rank] + len(batches[rank]) >= self.capacity[rank]:
                break
            batches[rank].append(self.pending.popleft())
        for rank, batch in enumerate(batches):
            if batch:
                self.conns[rank].send(batch)
                self.in_flight[rank] += len(batch)

    def step(self) -> list[Completion]:
        self._dispatch()
        busy = [conn for conn, n in zip(self.conns, self.in_flight) if n]
        if not busy:
            return []
        done: list[Completion] = []
        for conn in wait(busy, timeout=STEP_WAIT_S):
            _, completions = self._receive(conn)  # type: ignore[arg-type]
            self.in_flight[self.conns.index(conn)] -= len(completions)
            done.extend(completions)
        return done

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs):
            if proc.is_alive():
                try:
                    conn.send(None)
                    while conn.recv()[0] != "closed":  # drop completions still in the pipe
                        pass
                except (EOFError, OSError, BrokenPipeError):
                    pass
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
        self.conns, self.procs = [], []
