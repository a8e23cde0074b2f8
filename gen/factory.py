"""The default engine factory: one vLLM engine, or a pool of data-parallel replicas.

:func:`gen.stage.run` takes any :class:`gen.engine.EngineFactory`; this is the one it
uses unless told otherwise (the tests pass one that builds a scripted engine and counts the
calls, so "no engine started" is asserted, not inferred from log text).
"""

from __future__ import annotations

from gen.engine import Engine, EngineConfig


def build_engine(config: EngineConfig, *, data_parallel_size: int = 1, device: str = "cpu") -> Engine:
    """One :class:`gen.vllm_engine.VllmEngine`, or ``data_parallel_size`` of them behind a :class:`gen.replicas.ReplicaPool`."""
    if data_parallel_size > 1:
        from gen.replicas import ReplicaPool

        return ReplicaPool(config, size=data_parallel_size, device=device)
    from gen.vllm_engine import VllmEngine

    return VllmEngine(config)
