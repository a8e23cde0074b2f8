"""The Ray backend (:mod:`gen.ray_engine`): Ray Data LLM behind the streaming engine protocol.

One local Ray and one processor run for the whole module (:func:`ray_run`, engine start a few
minutes on 2 shared cores), on the tiny random Gemma-2 in float32, configured exactly as the
session's embedded engine (``tiny_vllm_run``), fed the same prompt ids and driven the way the
generate stage drives every engine: :func:`gen.stream.run_stream` committing to a real
:class:`gen.store.GenerationStore`. Two replicas (``--data-parallel-size 2``: one core each),
the path every data-parallel run takes; one replica runs in ``test_ray_kill_resume.py``. The
embedded engine's output is the reference:

- every task's completion ids and finish reason equal the embedded engine's;
- the committed parquet equals the embedded path's rows (every column but the times);
- ``close`` stops the local Ray it started, with every process it spawned.

The rest needs no engine: the one-line error when Ray is missing, and the pieces that keep the
replicas' settings equal to the embedded engine's.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest

from artifacts.errors import InputError
from gen.engine import Completion, EngineConfig
from gen.ray_engine import (
    INSTALL_HINT,
    CPU_BIND_ENV,
    engine_kwargs,
    finish_reason,
    forwarded_env,
    replica_bundles,
    replica_share,
    require_ray,
    sampling_row,
)
from gen.store import GenerationStore
from gen.stream import PromptTask, StreamStats, run_stream
from tests.gen.tiny_engine import TEST_ENV, TinyRun

GENERATIONS = "generations.parquet"
TIMING_COLUMNS = ["generation_time"]
COMMIT_EVERY = 3
BATCH_SIZE = 2  # several Ray Data batches, so rows come back in several waves of results
REPLICAS = 2


def _config() -> EngineConfig:
    return EngineConfig(model="m", revision=None, dtype="float32", max_model_len=64, max_new_tokens=16,
                        stop_token_ids=(1, 107), enforce_eager=True, enable_prefix_caching=False)


# -- no engine ---------------------------------------------------------------------------------


def test_missing_ray_is_a_one_line_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from gen.ray_engine import RayEngine

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as when it is not installed
    for attempt in (require_ray, lambda: RayEngine(_config())):
        with pytest.raises(InputError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and INSTALL_HINT in message and "pip install 'pva-baseline[cluster]'" in message


def test_sampling_is_the_embedded_engines() -> None:
    from gen.vllm_engine import sampling_params

    for config in (_config(), replace(_config(), stop_token_ids=(1,), ignore_eos=True)):
        embedded = sampling_params(config)
        ours = sampling_row(config)
        assert ours["temperature"] == embedded.temperature == 0.0
        assert ours["max_tokens"] == embedded.max_tokens
        assert ours["stop_token_ids"] == list(embedded.stop_token_ids)
        assert ours["ignore_eos"] is embedded.ignore_eos
        assert ours["skip_special_tokens"] is embedded.skip_special_tokens
        assert ours["detokenize"] is False  # ids only; the stage decodes itself


def test_engine_kwargs_carry_every_engine_setting() -> None:
    config = replace(_config(), revision="abc", tensor_parallel_size=2, seed=7, enable_prefix_caching=True)
    kwargs = engine_kwargs(config, device="cpu", max_num_seqs=256, max_num_batched_tokens=4096)
    assert kwargs == {
        "dtype": "float32", "max_model_len": 64, "tensor_parallel_size": 2, "enforce_eager": True,
        "enable_prefix_caching": True, "seed": 7, "disable_log_stats": True, "revision": "abc",
        "max_num_seqs": 256, "max_num_batched_tokens": 4096, "gpu_memory_utilization": 0.25,
    }
    assert "gpu_memory_utilization" not in engine_kwargs(config, device="cuda")  # vLLM's own default on GPUs


def test_finish_reason_follows_vllms_stop_check() -> None:
    stops = {1, 107}
    assert finish_reason((5, 6, 107), stops) == "stop"
    assert finish_reason((5, 107, 6), stops) == "length"  # a stop id inside is not the end
    assert finish_reason((5, 6), stops) == "length"
    assert finish_reason((), stops) == "length"


def test_replica_resources() -> None:
    share = dict(tensor_parallel_size=1, cpus_per_replica=None, cluster_cpus=8.0)
    assert replica_bundles(device="cpu", data_parallel_size=2, **share) == [{"CPU": 4.0}]
    assert replica_bundles(device="cpu", data_parallel_size=3, **share) == [{"CPU": 2.0}]
    assert replica_bundles(device="cpu", data_parallel_size=2, **{**share, "cpus_per_replica": 1.5}) == [{"CPU": 1.5}]
    assert replica_bundles(device="cuda", data_parallel_size=4, **{**share, "tensor_parallel_size": 2}) == [
        {"GPU": 1.0, "CPU": 1.0}, {"GPU": 1.0, "CPU": 1.0}]
    with pytest.raises(InputError, match="only 8 CPUs"):
        replica_bundles(device="cpu", data_parallel_size=9, **share)


def test_a_replica_takes_its_share_of_the_wave_at_most() -> None:
    # The replica up first must leave the others their share; never more than its engine holds.
    assert replica_share(388, data_parallel_size=2, max_num_seqs=256) == 194
    assert replica_share(1000, data_parallel_size=2, max_num_seqs=256) == 256
    assert replica_share(11, data_parallel_size=2, max_num_seqs=256) == 6
    assert replica_share(1, data_parallel_size=4, max_num_seqs=256) == 1


def test_replica_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    monkeypatch.delenv(CPU_BIND_ENV, raising=False)
    one = forwarded_env(_config(), device="cpu", data_parallel_size=1)
    assert one["VLLM_CPU_KVCACHE_SPACE"] == "3" and CPU_BIND_ENV not in one
    # Two CPU replicas must not bind their threads to the same cores.
    assert forwarded_env(_config(), device="cpu", data_parallel_size=2)[CPU_BIND_ENV] == "nobind"
    assert CPU_BIND_ENV not in forwarded_env(_config(), device="cuda", data_parallel_size=2)
    assert forwarded_env(replace(_config(), batch_invariant=True), device="cuda", data_parallel_size=1)[
        "VLLM_BATCH_INVARIANT"] == "1"


# -- one Ray run, shared ---------------------------------------------------------------------


@dataclass(frozen=True)
class RayRun:
    """What the module's one Ray run produced."""

    out: Path
    completions: list[Completion]  # as step() returned them, in arrival order
    stats: StreamStats
    metadata: dict
    left_behind: list[str]  # processes Ray or vLLM left after close()
    ray_connected_after_close: bool
    seconds: float


class _Recording:
    """Passes every call to the engine and keeps what ``step`` returned."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.max_num_seqs = engine.max_num_seqs
        self.returned: list[Completion] = []

    def add_request(self, request_id: str, prompt_token_ids) -> None:
        self.engine.add_request(request_id, prompt_token_ids)

    def step(self) -> list[Completion]:
        done = self.engine.step()
        self.returned.extend(done)
        return done

    def has_unfinished_requests(self) -> bool:
        return self.engine.has_unfinished_requests()

    def close(self) -> None:
        self.engine.close()


def tasks_of(table: pd.DataFrame) -> list[PromptTask]:
    """The embedded run's tasks: the same prompts, the same ids."""
    return [PromptTask(int(r.task_id), r.prompt, tuple(int(i) for i in r.prompt_token_ids)) for r in table.itertuples()]


def _descendants() -> dict[int, str]:
    """Every live process under this one: pid -> command line."""
    import psutil

    out = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                out[proc.pid] = " ".join(proc.cmdline())[:100]
        except psutil.Error:
            continue
    return out


@pytest.fixture(scope="module")
def ray_run(tiny_vllm_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> RayRun:
    import ray
    from transformers import AutoTokenizer

    from gen.ray_engine import RayEngine

    reference = pd.read_parquet(tiny_vllm_run.out / GENERATIONS)
    settings = json.loads((tiny_vllm_run.out / "generations_metadata.json").read_text())["settings"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_vllm_run.model)
    out = tmp_path_factory.mktemp("ray-generate")
    store = GenerationStore(out)
    store.open(settings, overwrite=False)
    store.write_metadata({"settings": settings})
    before = _descendants()  # e.g. multiprocessing's resource tracker, which lives as long as we do
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:
        for name, value in TEST_ENV.items():
            mp.setenv(name, value)
        engine = _Recording(RayEngine(tiny_vllm_run.config, data_parallel_size=REPLICAS, batch_size=BATCH_SIZE))
        try:
            stats = run_stream(
                tasks=tasks_of(reference), engine=engine, store=store,
                decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
                commit_every=COMMIT_EVERY, progress=False,
            )
        finally:
            engine.close()
    seconds = time.perf_counter() - start
    def left_behind() -> list[str]:
        return [f"{pid} {cmd}" for pid, cmd in _descendants().items() if pid not in before]

    deadline = time.monotonic() + 60
    while left_behind() and time.monotonic() < deadline:  # Ray's and vLLM's processes take a moment to go
        time.sleep(1)
    print(f"Ray run: {seconds:.0f}s, Ray Data start to the first request in an engine "
          f"{engine.engine.startup_s:.0f}s, {stats.n_commits} commits")
    return RayRun(out=out, completions=engine.returned, stats=stats, metadata=engine.engine.metadata(),
                  left_behind=left_behind(), ray_connected_after_close=ray.is_initialized(), seconds=seconds)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ray_token_ids_equal_the_embedded_engines_on_every_task(ray_run: RayRun, tiny_vllm_run: TinyRun) -> None:
    reference = pd.read_parquet(tiny_vllm_run.out / GENERATIONS)
    want = {str(t): ([int(i) for i in ids], reason) for t, ids, reason in
            zip(reference["task_id"], reference["completion_token_ids"], reference["finish_reason"])}
    got = {c.request_id: (list(c.token_ids), c.finish_reason) for c in ray_run.completions}
    assert len(ray_run.completions) == len(got) == len(want)  # each task once
    assert got == want
    # The run is not trivial: completions stop at <end_of_turn> and at the context end.
    assert {reason for _, reason in want.values()} == {"stop", "length"}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ray_run_through_the_store_commits_the_embedded_rows(ray_run: RayRun, tiny_vllm_run: TinyRun) -> None:
    import ray

    reference = pd.read_parquet(tiny_vllm_run.out / GENERATIONS)
    committed = pd.read_parquet(ray_run.out / GENERATIONS)
    columns = [c for c in reference.columns if c not in TIMING_COLUMNS]
    pd.testing.assert_frame_equal(committed[columns], reference[columns])
    assert (committed["generation_time"] > 0).all()
    n = len(reference)
    assert ray_run.stats.n_tasks == n and ray_run.stats.n_completion_tokens == int(reference["n_completion_tokens"].sum())
    assert 1 <= ray_run.stats.n_commits <= n  # batches arrive together: commits hold 3 rows or more
    assert not list(ray_run.out.glob(".*.tmp"))

    meta = ray_run.metadata
    assert meta["backend"] == "ray" and meta["ray_version"] == ray.__version__
    assert meta["ray_local_cluster"] is True and meta["ray_cluster_nodes"] == 1
    assert meta["ray_cluster_resources"]["CPU"] >= 1 and "memory" in meta["ray_cluster_resources"]
    # The embedded engine's scheduler limits (vLLM's LLM defaults on CPU), not the async engine's.
    assert (meta["ray_replica_max_num_seqs"], meta["ray_replica_max_num_batched_tokens"]) == (256, 4096)
    # Two replicas on this machine's cores: one core each, threads unbound, half the wave each at most.
    cpus = meta["ray_cluster_resources"]["CPU"]
    assert meta["ray_replica_bundles"] == [{"CPU": float(cpus // REPLICAS)}]
    assert meta["ray_replica_env"]["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert meta["ray_requests_per_replica"] == -(-n // REPLICAS)
    assert meta["ray_startup_s"] and 0 < meta["ray_startup_s"] < ray_run.seconds
    json.dumps(meta)  # ready for the metadata file

    # close() stopped the local Ray it started, and every process under this one went with it.
    assert not ray_run.ray_connected_after_close
    assert ray_run.left_behind == []
