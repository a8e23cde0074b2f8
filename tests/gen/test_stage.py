"""The stage with a scripted engine: selection, exclusion, resume, metadata, stop policy, prompt styles.

The real vLLM engine runs in ``test_e2e_tiny.py`` and in the SIGKILL tests
(``tests/pipeline/test_kill_resume.py``, embedded and on Ray).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artifacts.errors import InputError
from artifacts.files import sha256_file
from artifacts.records import record_path
from artifacts.schema import generations as keys
from gen.config import GenerateConfig
from gen.plan import select_rows, split_overflow
from gen.stage import run
from gen.stream import PromptTask
from tests.gen.scripted_engine import END_OF_TURN, EOS, ScriptedFactory, default_script


def generate(*, engine_factory=None, **settings):
    """The stage as a notebook calls it: a config, then ``run``."""
    return run(GenerateConfig(**settings), engine_factory=engine_factory, progress=False)


ROWS = pd.DataFrame({"task_id": [11, 12, 13, 14, 15]})


def test_select_rows_is_inclusive_and_limited() -> None:
    assert select_rows(ROWS, start=1, end=3, limit=None)["task_id"].tolist() == [12, 13, 14]
    assert select_rows(ROWS, start=1, end=None, limit=2)["task_id"].tolist() == [12, 13]
    assert select_rows(ROWS, start=None, end=None, limit=None)["task_id"].tolist() == [11, 12, 13, 14, 15]
    assert select_rows(ROWS, start=4, end=99, limit=None)["task_id"].tolist() == [15]


@pytest.mark.parametrize(
    ("start", "end", "limit", "match"),
    [(3, 2, None, "empty"), (5, None, None, "only 5 rows")],
)
def test_select_rows_rejects_bad_ranges(start, end, limit, match) -> None:
    with pytest.raises(InputError, match=match):
        select_rows(ROWS, start=start, end=end, limit=limit)


def test_split_overflow_excludes_prompts_that_leave_no_room() -> None:
    tasks = [PromptTask(1, "a", (2,) * 9), PromptTask(2, "b", (2,) * 10), PromptTask(3, "c", (2,) * 11)]
    fits, excluded = split_overflow(tasks, 10)
    assert [t.task_id for t in fits] == [1]
    assert [e["task_id"] for e in excluded] == [2, 3]
    assert "prompt has 11 tokens; the context holds 10" in excluded[1]["reason"]


def test_prompts_longer_than_the_context_are_listed_not_fatal(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    # Every prompt overflows a 16-token context: no engine starts, the run still records them.
    result = generate(problems_path=problems_parquet, output_dir=tmp_path, model=str(tiny_gemma2),
                      limit=3, max_model_len=16)
    assert result.n_excluded == 3 and result.n_generated == 0
    meta = json.loads((tmp_path / "generations_metadata.json").read_text())
    assert len(meta["excluded_task_ids"]) == 3 and meta["excluded"][0]["reason"].startswith("prompt has")
    assert meta["n_tasks"] == 0 and meta["complete"] is True
    assert pd.read_parquet(tmp_path / "generations.parquet").empty


def test_other_settings_are_refused_before_the_engine_starts(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    common = dict(problems_path=problems_parquet, output_dir=tmp_path, model=str(tiny_gemma2), limit=2, max_model_len=16)
    generate(**common)  # both prompts overflow: an empty file and its record, no engine
    with pytest.raises(InputError, match=r"other settings \(prompt_style: 'raw' -> 'chat'\)"):
        generate(**common, prompt_style="chat")
    with pytest.raises(InputError, match=r"max_new_tokens: 2000 -> 5"):
        generate(**common, max_new_tokens=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "/no/such/model"}, "model folder not found"),
        ({"max_new_tokens": 0}, "--max-new-tokens 0: must be at least 1"),
        ({"commit_every": 0}, "--commit-every 0: must be at least 1"),
        ({"commit_seconds": 0}, "--commit-seconds 0: must be positive"),
        ({"chunk_size": 0}, "--chunk-size 0: must be at least 1"),
        ({"start": -1}, "--start -1: must be at least 0"),
        ({"limit": 0}, "--limit 0: must be at least 1"),
        ({"max_model_len": 1}, "--max-model-len 1: must be at least 2"),
        ({"tensor_parallel_size": 0}, "--tensor-parallel-size 0: must be at least 1"),
        ({"data_parallel_size": 0}, "--data-parallel-size 0: must be at least 1"),
        ({"stop": "never"}, "--stop never: choose one of end-of-turn, eos-only"),
        ({"prompt_style": "fancy"}, "--prompt-style fancy: choose one of raw, chat, raw-double-assert"),
        ({"dtype": "int8"}, "--dtype int8: choose one of float32, bfloat16, float16"),
        ({"problems_path": "/no/problems.parquet"}, "run `python cli.py split` first"),
    ],
)
def test_bad_input_is_an_input_error(kwargs, match, tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    args = dict(problems_path=problems_parquet, output_dir=tmp_path, model=str(tiny_gemma2), limit=1)
    with pytest.raises(InputError, match=match):
        generate(**(args | kwargs))


def test_missing_vllm_names_the_extra(monkeypatch: pytest.MonkeyPatch, tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(InputError, match=r"vllm is not installed; install the vLLM extra: pip install -e '\.\[cpu\]'"):
        generate(problems_path=problems_parquet, output_dir=tmp_path, model=str(tiny_gemma2))


# --- the whole stage against the scripted engine (tests/gen/scripted_engine.py) --------------

N = 6
MAX_NEW = 12


def scripted(tiny_gemma2: Path, problems_parquet: Path, out: Path, factory: ScriptedFactory, **kwargs):
    args = dict(problems_path=problems_parquet, output_dir=out, model=str(tiny_gemma2), limit=N,
                max_new_tokens=MAX_NEW, commit_every=2, engine_factory=factory)
    return generate(**(args | kwargs))


def table(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "generations.parquet")


def test_a_larger_limit_resumes_and_generates_only_the_new_tasks(
    tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path
) -> None:
    factory = ScriptedFactory()
    scripted(tiny_gemma2, problems_parquet, tmp_path, factory, limit=3)
    before = table(tmp_path)
    result = scripted(tiny_gemma2, problems_parquet, tmp_path, factory, limit=5)  # selects: no refusal
    assert (result.n_generated, result.n_skipped) == (2, 3)
    after = table(tmp_path)
    assert len(after) == 5
    pd.testing.assert_frame_equal(after[after["task_id"].isin(before["task_id"])].reset_index(drop=True), before)


def test_a_full_run_streams_every_task_through_one_engine(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    factory = ScriptedFactory()
    result = scripted(tiny_gemma2, problems_parquet, tmp_path, factory)
    assert factory.starts == 1 and factory.engines[0].closed
    engine = factory.engines[0]
    df = table(tmp_path)
    first_rows = pd.read_parquet(problems_parquet)["task_id"].iloc[:N]
    assert engine.added == [str(t) for t in first_rows]  # every pending prompt, all at once, in row order
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gemma2)
    for row in df.itertuples():
        script = default_script(list(row.prompt_token_ids))
        assert list(row.completion_token_ids) == script[: script.index(END_OF_TURN) + 1]  # stopped at <end_of_turn>
        assert row.finish_reason == "stop"
        assert row.completion == tok.decode(list(row.completion_token_ids), skip_special_tokens=True) != ""
    assert result.n_generated == N and result.n_commits == N // 2 and result.max_num_seqs == 4
    meta = json.loads((tmp_path / "generations_metadata.json").read_text())
    assert meta[keys.COMPLETE] is True and meta[keys.N_TASKS] == N
    assert meta[keys.N_COMPLETION_TOKENS] == int(df["n_completion_tokens"].sum())
    # Engine time, not the sum of overlapping per-task times.
    assert meta[keys.GENERATION_TIME_S] == pytest.approx(result.generation_time_s)
    assert meta[keys.TOKENS_PER_S] == pytest.approx(meta[keys.N_COMPLETION_TOKENS] / meta[keys.GENERATION_TIME_S])
    assert meta[keys.STOP] == "end-of-turn" and meta[keys.IGNORE_EOS] is False
    assert meta[keys.STOP_TOKEN_IDS] == [EOS, END_OF_TURN] and "settings" not in meta
    assert meta["commit_every"] == 2 and meta["max_num_seqs"] == 4 and meta["enforce_eager"] is True
    run = meta[keys.RUNS][-1]
    assert run["n_generated"] == N and run["n_commits"] == N // 2 and run["max_num_seqs"] == 4
    assert "chunk_size" not in meta and "chunk_size" not in run
    config = factory.calls[0]["config"]
    assert config.enforce_eager is True and config.ignore_eos is False  # CPU default: eager
    assert factory.calls[0]["data_parallel_size"] == 1 and factory.calls[0]["device"] == "cpu"


def test_a_rerun_with_nothing_left_starts_no_engine_and_touches_no_file(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    scripted(tiny_gemma2, problems_parquet, tmp_path, ScriptedFactory())
    files = [tmp_path / "generations.parquet", tmp_path / "generations_metadata.json"]
    before = [sha256_file(f) for f in files]
    again = ScriptedFactory()
    result = scripted(tiny_gemma2, problems_parquet, tmp_path, again)
    assert again.starts == 0  # counted through the injected factory, not read from log text
    assert result.n_generated == 0 and result.n_skipped == N
    assert [sha256_file(f) for f in files] == before


def test_a_crashed_run_keeps_its_commits_and_the_rerun_finishes_identically(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    crashed = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        # Scripted turn ends fall after 3..8 ids: by step 6 some tasks are done, others not.
        scripted(tiny_gemma2, problems_parquet, crashed, ScriptedFactory(max_num_seqs=8, fail_at_step=6), commit_every=1)
    kept = table(crashed)
    assert 0 < len(kept) < N
    meta = json.loads((crashed / "generations_metadata.json").read_text())
    assert meta[keys.COMPLETE] is False and meta[keys.N_TASKS] == len(kept)
    assert meta[keys.RUNS][-1]["n_generated"] == len(kept)  # written at every commit

    rerun = ScriptedFactory()
    result = scripted(tiny_gemma2, problems_parquet, crashed, rerun)
    assert result.n_skipped == len(kept) and result.n_generated == N - len(kept)
    assert sorted(rerun.engines[0].added) == sorted(str(t) for t in set(table(crashed)["task_id"]) - set(kept["task_id"]))
    final = table(crashed)
    pd.testing.assert_frame_equal(final[final["task_id"].isin(kept["task_id"])].reset_index(drop=True), kept)

    scripted(tiny_gemma2, problems_parquet, tmp_path / "fresh", ScriptedFactory())
    columns = [c for c in final.columns if c != "generation_time"]
    pd.testing.assert_frame_equal(final[columns], table(tmp_path / "fresh")[columns])
    meta = json.loads((crashed / "generations_metadata.json").read_text())
    assert meta[keys.COMPLETE] is True and len(meta[keys.RUNS]) == 2
    assert meta[keys.GENERATION_TIME_S] == pytest.approx(sum(r[keys.GENERATION_TIME_S] for r in meta[keys.RUNS]))


def test_eos_only_runs_past_end_of_turn(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    factory = ScriptedFactory()
    scripted(tiny_gemma2, problems_parquet, tmp_path, factory, stop="eos-only")
    config = factory.calls[0]["config"]
    assert config.ignore_eos is True and config.stop_token_ids == (EOS,)
    for row in table(tmp_path).itertuples():
        ids = list(row.completion_token_ids)
        script = default_script(list(row.prompt_token_ids))
        assert END_OF_TURN in ids[:-1] and ids[-1] == EOS  # continued past <end_of_turn>, stopped at <eos>
        assert ids == script[: script.index(EOS) + 1]
    meta = json.loads((tmp_path / "generations_metadata.json").read_text())
    assert meta[keys.STOP] == "eos-only" and meta[keys.IGNORE_EOS] is True and meta[keys.STOP_TOKEN_IDS] == [EOS]
    assert meta["stop_token_source"] == "tokenizer"
    with pytest.raises(InputError, match=r"stop: 'eos-only' -> 'end-of-turn'"):
        scripted(tiny_gemma2, problems_parquet, tmp_path, ScriptedFactory())  # default stopping: other settings


def test_raw_double_assert_prompts_reach_the_engine(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    factory = ScriptedFactory()
    scripted(tiny_gemma2, problems_parquet, tmp_path, factory, prompt_style="raw-double-assert", limit=2)
    df = table(tmp_path)
    assert df["prompt"].str.contains("\nassert assert ").all()
    meta = json.loads((tmp_path / "generations_metadata.json").read_text())
    assert meta[keys.PROMPT_STYLE] == "raw-double-assert"


def test_overwrite_discards_the_earlier_rows(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    scripted(tiny_gemma2, problems_parquet, tmp_path, ScriptedFactory(), limit=2)
    factory = ScriptedFactory()
    result = scripted(tiny_gemma2, problems_parquet, tmp_path, factory, limit=3, prompt_style="chat", overwrite=True)
    assert result.n_skipped == 0 and result.n_generated == 3 and len(factory.engines[0].added) == 3
    df = table(tmp_path)
    assert len(df) == 3 and df["prompt"].str.startswith("<bos><start_of_turn>user").all()
    meta = json.loads((tmp_path / "generations_metadata.json").read_text())
    assert len(meta[keys.RUNS]) == 1 and meta[keys.PROMPT_STYLE] == "chat"


def test_output_without_a_completion_record_is_refused(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    scripted(tiny_gemma2, problems_parquet, tmp_path, ScriptedFactory(), limit=2)
    record_path(GenerateConfig(output_dir=tmp_path)).unlink()  # as an older version left it
    with pytest.raises(InputError, match="without a completion record.*--overwrite"):
        scripted(tiny_gemma2, problems_parquet, tmp_path, ScriptedFactory(), limit=2)


def test_stored_prompts_must_match_this_runs_prompts(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    scripted(tiny_gemma2, problems_parquet, tmp_path, ScriptedFactory(), limit=2)
    path = tmp_path / "generations.parquet"
    stored = pq.read_table(path)
    ids = stored.column("prompt_token_ids").to_pylist()
    ids[1] = ids[1] + [9]  # as a changed problems file or tokenizer would make it
    stored = stored.set_column(stored.schema.get_field_index("prompt_token_ids"), "prompt_token_ids",
                               pa.array(ids, type=stored.schema.field("prompt_token_ids").type))
    pq.write_table(stored, path)
    factory = ScriptedFactory()
    with pytest.raises(InputError, match=r"stored prompts of task\(s\) \[\d+\] differ"):
        scripted(tiny_gemma2, problems_parquet, tmp_path, factory, limit=2)
    assert factory.starts == 0


def test_stored_rows_must_come_from_the_model_the_settings_resolve_to(tiny_gemma2: Path, problems_parquet: Path,
                                                                      tmp_path: Path) -> None:
    # Same --model folder, other weights: the record sees the same settings, the metadata the other hash.
    scripted(tiny_gemma2, problems_parquet, tmp_path, ScriptedFactory(), limit=2)
    path = tmp_path / "generations_metadata.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps(meta | {keys.MODEL_HASH: "0" * 64}))
    with pytest.raises(InputError, match=r"another model or engine setup \(model_hash: '0+' -> '[0-9a-f]{64}'\)"):
        scripted(tiny_gemma2, problems_parquet, tmp_path, ScriptedFactory(), limit=2)


def test_chunk_size_is_read_as_commit_every(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    result = scripted(tiny_gemma2, problems_parquet, tmp_path, ScriptedFactory(), chunk_size=3)
    assert result.n_commits == N // 3
    assert "--chunk-size is deprecated" in capsys.readouterr().err
    meta = json.loads((tmp_path / "generations_metadata.json").read_text())
    assert meta["commit_every"] == 3 and "chunk_size" not in meta


def test_options_reach_the_engine_config(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # several replicas run on Ray: a local one, this machine
    factory = ScriptedFactory()
    scripted(tiny_gemma2, problems_parquet, tmp_path, factory, limit=1, enforce_eager=False, deterministic=True,
             seed=3, data_parallel_size=2, max_model_len=1024)
    call = factory.calls[0]
    assert call["data_parallel_size"] == 2
    c = call["config"]
    assert (c.enforce_eager, c.enable_prefix_caching, c.seed, c.max_model_len, c.max_new_tokens) == (False, False, 3, 1024, MAX_NEW)
    meta = json.loads((tmp_path / "generations_metadata.json").read_text())
    assert meta["data_parallel_size"] == 2 and meta["deterministic"] and meta["batch_invariant"] is False
    assert meta[keys.BACKEND] == "ray"  # more than one replica always runs on Ray


def test_bad_input_leaves_the_output_folder_untouched(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="the range is empty"):
        generate(problems_path=problems_parquet, output_dir=tmp_path / "out", model=str(tiny_gemma2), start=5, end=2)
    assert not (tmp_path / "out").exists()
