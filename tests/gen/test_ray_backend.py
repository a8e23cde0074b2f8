"""The Ray backend (:mod:`gen.ray_engine`, ``generate --backend ray``) without starting Ray or an engine.

The one-line error when Ray is missing (and exit 2 from the command line), which engine the
factory builds for which settings, the stage's metadata for an engine that reports itself and
starts inside the run, and the pieces that keep the replicas' settings equal to the embedded
engine's. The real Ray runs (token ids equal the embedded engine's on every task, SIGKILL of
the driver and resume) are ``tests/pipeline/test_kill_resume.py``: two Ray runs, the suite's only ones.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import gen.ray_engine
import gen.vllm_engine
from artifacts.errors import InputError
from artifacts.schema import generations as keys
from cli import cli
from gen.config import GenerateConfig
from gen.engine import Completion, EngineConfig
from gen.ray_engine import (
    CPU_BIND_ENV,
    INSTALL_HINT,
    RAY_ADDRESS_ENV,
    engine_kwargs,
    finish_reason,
    forwarded_env,
    replica_bundles,
    replica_share,
    require_ray,
    sampling_row,
)
from gen.stage import build_engine, default_factory, run
from tests.gen.scripted_engine import ScriptedEngine, ScriptedFactory


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


@pytest.mark.parametrize("args", [["--backend", "ray"], ["--data-parallel-size", "2"]], ids=" ".join)
def test_missing_ray_exits_2_from_the_command_line(args: list[str], monkeypatch: pytest.MonkeyPatch,
                                                   tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["generate", "--model", str(tiny_gemma2), "--problems", str(problems_parquet),
                                      "--output-dir", str(out), "--limit", "1", *args])
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "pip install 'pva-baseline[cluster]'" in error[0]
    assert not out.exists()  # refused before anything was written


class _Built:
    """Stands in for an engine class: records how it was built, starts nothing."""

    def __init__(self, config: EngineConfig, **kwargs: Any) -> None:
        self.config, self.kwargs = config, kwargs


@pytest.mark.parametrize(
    ("backend", "replicas", "engine"),
    [("embedded", 1, "VllmEngine"), ("ray", 1, "RayEngine"), ("embedded", 2, "RayEngine"), ("ray", 3, "RayEngine")],
)
def test_the_factory_builds_ray_for_the_ray_backend_and_for_several_replicas(
    backend: str, replicas: int, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module, name in ((gen.vllm_engine, "VllmEngine"), (gen.ray_engine, "RayEngine")):
        monkeypatch.setattr(module, name, type(name, (_Built,), {}))
    made = build_engine(_config(), data_parallel_size=replicas, device="cpu", backend=backend, ray_batch_size=3)
    assert type(made).__name__ == engine and made.config == _config()
    if engine == "RayEngine":
        assert made.kwargs == {"data_parallel_size": replicas, "device": "cpu", "batch_size": 3}


def test_the_stage_binds_the_backend_and_a_ray_batch_no_larger_than_a_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    for settings, batch in (({"backend": "ray", "commit_every": 1}, 1), ({"data_parallel_size": 2}, 8)):
        factory = default_factory(GenerateConfig(**settings))
        assert factory.func is build_engine
        assert factory.keywords == {"backend": settings.get("backend", "embedded"), "ray_batch_size": batch}


class _ReportingEngine(ScriptedEngine):
    """A scripted engine that, like :class:`gen.ray_engine.RayEngine`, reports itself and starts in its first step."""

    STARTUP_S = 0.3

    def __init__(self, config: EngineConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.startup_s: float | None = None

    def step(self) -> list[Completion]:
        if self.startup_s is None:
            time.sleep(self.STARTUP_S)  # the replicas' engines start when the job does
            self.startup_s = self.STARTUP_S
        return super().step()

    def metadata(self) -> dict[str, Any]:
        return {keys.BACKEND: "ray", keys.RAY_VERSION: "9.9", keys.RAY_CLUSTER_RESOURCES: {"CPU": 2.0},
                "ray_startup_s": self.startup_s}


class _ReportingFactory(ScriptedFactory):
    def __call__(self, config: EngineConfig, *, data_parallel_size: int, device: str) -> ScriptedEngine:
        self.calls.append({"config": config, "data_parallel_size": data_parallel_size, "device": device})
        self.engines.append(_ReportingEngine(config, max_num_seqs=self.max_num_seqs))
        return self.engines[-1]


def test_metadata_records_the_backend_and_what_the_engine_reports(
    monkeypatch: pytest.MonkeyPatch, tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path
) -> None:
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)  # a local Ray: the device is this machine's
    common = dict(problems_path=problems_parquet, model=str(tiny_gemma2), limit=3, max_new_tokens=8)
    result = run(GenerateConfig(output_dir=tmp_path / "ray", backend="ray", **common),
                 engine_factory=_ReportingFactory(), progress=False)
    meta = json.loads((tmp_path / "ray" / "generations_metadata.json").read_text())
    info = meta[keys.RUNS][-1]
    assert meta[keys.BACKEND] == info[keys.BACKEND] == "ray"
    assert info[keys.RAY_VERSION] == "9.9" and info[keys.RAY_CLUSTER_RESOURCES] == {"CPU": 2.0}
    assert info["ray_startup_s"] == _ReportingEngine.STARTUP_S  # read again after the run, not only at the start
    # The start inside the run counts as engine start, not as generation.
    assert info["engine_load_time_s"] >= _ReportingEngine.STARTUP_S > info[keys.GENERATION_TIME_S]
    assert result.generation_time_s == info[keys.GENERATION_TIME_S] == meta[keys.GENERATION_TIME_S]
    assert json.loads((tmp_path / "ray" / "generations_metadata.json").read_text()) == result.metadata

    run(GenerateConfig(output_dir=tmp_path / "embedded", **common), engine_factory=ScriptedFactory(), progress=False)
    embedded = json.loads((tmp_path / "embedded" / "generations_metadata.json").read_text())
    assert embedded[keys.BACKEND] == embedded[keys.RUNS][-1][keys.BACKEND] == "embedded"
    assert keys.RAY_VERSION not in embedded[keys.RUNS][-1]


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
    share = dict(tensor_parallel_size=1, cluster_cpus=8.0)
    assert replica_bundles(device="cpu", data_parallel_size=2, **share) == [{"CPU": 4.0}]
    assert replica_bundles(device="cpu", data_parallel_size=3, **share) == [{"CPU": 2.0}]
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
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    one = forwarded_env(_config(), device="cpu", data_parallel_size=1)
    assert one["VLLM_CPU_KVCACHE_SPACE"] == "3" and CPU_BIND_ENV not in one
    assert one["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # CPU replicas' engines run in fewer processes too
    # Two CPU replicas must not bind their threads to the same cores.
    assert forwarded_env(_config(), device="cpu", data_parallel_size=2)[CPU_BIND_ENV] == "nobind"
    assert CPU_BIND_ENV not in forwarded_env(_config(), device="cuda", data_parallel_size=2)
    assert forwarded_env(replace(_config(), batch_invariant=True), device="cuda", data_parallel_size=1)[
        "VLLM_BATCH_INVARIANT"] == "1"


