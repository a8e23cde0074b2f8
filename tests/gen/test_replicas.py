"""Data parallelism: each replica gets its own devices or cores, and all are fed from one queue."""

from __future__ import annotations

import os

import pytest

from artifacts.errors import InputError
from gen.engine import Completion, EngineConfig
from gen.replicas import CPU_BIND_ENV, CUDA_DEVICES_ENV, ReplicaPool, replica_envs
from tests.gen.scripted_engine import END_OF_TURN, EOS, ScriptedEngine


def test_cpu_cores_are_split_between_replicas() -> None:
    cores = sorted(os.sched_getaffinity(0))
    envs = replica_envs(len(cores), tensor_parallel_size=1, device="cpu")
    assert [e[CPU_BIND_ENV] for e in envs] == [str(c) for c in cores]
    with pytest.raises(InputError, match="CPU cores available"):
        replica_envs(len(cores) + 1, tensor_parallel_size=1, device="cpu")


def test_gpus_are_sliced_by_tensor_parallel_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CUDA_DEVICES_ENV, "4,5,6,7")
    envs = replica_envs(2, tensor_parallel_size=2, device="cuda")
    assert [e[CUDA_DEVICES_ENV] for e in envs] == ["4,5", "6,7"]
    with pytest.raises(InputError, match="needs 6 GPUs, 4 visible"):
        replica_envs(3, tensor_parallel_size=2, device="cuda")


def _config(max_new_tokens: int = 40) -> EngineConfig:
    return EngineConfig(model="m", revision=None, dtype="float32", max_model_len=4096, max_new_tokens=max_new_tokens,
                        stop_token_ids=(EOS, END_OF_TURN))


def _drain(engine) -> list[Completion]:
    done = []
    while engine.has_unfinished_requests():
        done += engine.step()
    return done


def test_replicas_share_one_queue_and_return_the_single_engine_tokens() -> None:
    """Two scripted replicas in real child processes: every request comes back once, with the tokens one
    engine gives, and the queue keeps each replica at most its max_num_seqs in flight."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPU cores for 2 replicas")
    prompts = {str(100 + i): [2, 100 + i, i * 7] for i in range(11)}
    pool = ReplicaPool(_config(), size=2, device="cpu", make_engine=ScriptedEngine)
    try:
        assert pool.capacity == [4, 4] and pool.max_num_seqs == 8
        for request_id, ids in prompts.items():
            pool.add_request(request_id, ids)
        assert len(pool.pending) == 11 and pool.has_unfinished_requests()
        pool._dispatch()
        assert pool.in_flight == [4, 4] and len(pool.pending) == 3  # least loaded first, up to capacity
        got = {c.request_id: c for c in _drain(pool)}
        assert not pool.pending and pool.in_flight == [0, 0] and not pool.has_unfinished_requests()
    finally:
        pool.close()
    single = ScriptedEngine(_config())
    for request_id, ids in prompts.items():
        single.add_request(request_id, ids)
    expected = {c.request_id: c for c in _drain(single)}
    assert got == expected


def test_a_replica_that_fails_to_start_is_reported() -> None:
    with pytest.raises(RuntimeError, match="data-parallel replica failed: .*boom"):
        ReplicaPool(_config(), size=2, device="cpu", make_engine=_fail_to_start)


def _fail_to_start(config: EngineConfig):
    raise OSError("boom")


@pytest.mark.slow
def test_two_real_cpu_replicas_give_hugging_face_tokens(tiny_gemma2, problems_parquet, tmp_path) -> None:
    """The real path once: two vLLM replicas (one core each) in spawned processes, fed from the queue,
    every completion equal to Hugging Face greedy (which one engine matches: test_e2e_tiny.py)."""
    import pandas as pd

    from demo.hf_reference import hf_greedy
    from gen.config import GenerateConfig
    from gen.stage import run
    from gen.stop_tokens import end_of_turn_ids
    from tests.gen.tiny_engine import TEST_ENV

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPU cores for 2 replicas")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in TEST_ENV.items():
            mp.setenv(name, value)
        result = run(GenerateConfig(problems_path=problems_parquet, output_dir=tmp_path, model=str(tiny_gemma2), limit=5,
                                    max_new_tokens=12, max_model_len=1024, data_parallel_size=2, commit_every=1),
                     progress=False)
    assert result.n_generated == 5 and result.max_num_seqs and result.metadata["data_parallel_size"] == 2
    df = pd.read_parquet(tmp_path / "generations.parquet")
    prompts = [[int(i) for i in p] for p in df["prompt_token_ids"]]
    expected = hf_greedy(str(tiny_gemma2), prompts, max_new_tokens=12, stop_token_ids=end_of_turn_ids(str(tiny_gemma2)).ids)
    assert df["completion_token_ids"].map(lambda ids: [int(i) for i in ids]).tolist() == expected
