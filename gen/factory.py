"""The default engine factory: one embedded vLLM engine, or vLLM replicas on Ray.

:func:`gen.stage.run` takes any :class:`gen.engine.EngineFactory`; this is the one it
uses unless told otherwise (the tests pass one that builds a scripted engine and counts the
calls, so "no engine started" is asserted, not inferred from log text). The stage binds
``backend`` and ``ray_batch_size`` (``functools.partial``), so the factory protocol stays.
"""

from __future__ import annotations

from gen.config import EMBEDDED, uses_ray
from gen.engine import Engine, EngineConfig
from gen.ray_engine import DEFAULT_BATCH_SIZE


def build_engine(config: EngineConfig, *, data_parallel_size: int = 1, device: str = "cpu", backend: str = EMBEDDED,
                 ray_batch_size: int = DEFAULT_BATCH_SIZE) -> Engine:
    """A :class:`gen.vllm_engine.VllmEngine`, or a :class:`gen.ray_engine.RayEngine` of
    ``data_parallel_size`` replicas (Ray Data batches of ``ray_batch_size`` rows)."""
    if uses_ray(backend, data_parallel_size):
        from gen.ray_engine import RayEngine

        return RayEngine(config, data_parallel_size=data_parallel_size, device=device, batch_size=ray_batch_size)
    from gen.vllm_engine import VllmEngine

    return VllmEngine(config)
