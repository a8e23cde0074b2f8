"""``generations_metadata.json``: what made the rows, which tasks are in, what it cost.

Written before the engine starts (``complete: false``), after every commit and at the end, so
a killed run's committed work and its engine time stay on record. Each run appends one entry
to ``runs``; the totals (counts over the stored rows, times summed over the runs) are what
report reads. Keys other stages read: :mod:`artifacts.schema.generations`; all: data/README.md.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from artifacts.files import sha256_file
from artifacts.schema import generations as keys
from gen.config import EMBEDDED, RAY, GenerateConfig
from gen.device_policy import apply_cpu_env_defaults, device_name
from gen.engine import Engine
from gen.plan import Plan
from gen.ray_engine import cluster_address
from gen.store import GenerationStore
from gen.stream import StreamStats
from gen.vllm_engine import vllm_version


def run_info(config: GenerateConfig, plan: Plan) -> dict[str, Any]:
    """This run's entry of ``runs`` (its counts and times are filled in as it goes).

    On a Ray cluster (``RAY_ADDRESS``) the device names the replicas' kind only: the driver may
    have no GPU (``ray_cluster_resources`` lists the cluster's).
    """
    device, engine = plan.resolved.device, plan.resolved.engine
    on_cluster = config.uses_ray and cluster_address() is not None
    return {
        "started": _now(),
        keys.BACKEND: RAY if config.uses_ray else EMBEDDED,
        keys.VLLM_VERSION: vllm_version(),
        keys.DEVICE: f"{device}:ray cluster" if on_cluster else device_name(device),
        "tensor_parallel_size": config.tensor_parallel_size,
        "data_parallel_size": config.data_parallel_size,
        "commit_every": config.commits_every,
        "commit_seconds": config.commit_seconds,
        "enforce_eager": engine.enforce_eager,
        "enable_prefix_caching": engine.enable_prefix_caching,
        "batch_invariant": engine.batch_invariant,
        "batch_invariant_note": plan.resolved.batch_invariant_note,
        "cpu_env": apply_cpu_env_defaults() if device == "cpu" else None,
        "max_num_seqs": None,
        "n_generated": 0,
        "n_commits": 0,
        keys.N_COMPLETION_TOKENS: 0,
        "engine_load_time_s": 0.0,
        keys.GENERATION_TIME_S: 0.0,
        keys.WALL_TIME_S: 0.0,
    }


def fixed_fields(config: GenerateConfig, plan: Plan, info: dict[str, Any],
                 previous: dict[str, Any] | None) -> dict[str, Any]:
    """The metadata fields fixed for this run (:func:`totals` adds the rest); exclusions merge with earlier runs'."""
    r = plan.resolved
    excluded = {e["task_id"]: e for e in [*(previous or {}).get(keys.EXCLUDED, []), *plan.excluded]}
    return {
        keys.MODEL: r.source.name,
        keys.MODEL_PATH: r.source.path,
        keys.MODEL_REVISION: r.source.revision,
        keys.MODEL_HASH: r.source.content_hash,
        keys.DTYPE: r.engine.dtype,
        keys.VLLM_VERSION: info[keys.VLLM_VERSION],
        keys.DEVICE: info[keys.DEVICE],
        keys.PROMPT_STYLE: config.prompt_style,
        keys.MAX_NEW_TOKENS: config.max_new_tokens,
        "max_model_len": r.engine.max_model_len,
        "seed": config.seed,
        "temperature": 0.0,
        "deterministic": config.deterministic,
        **{k: info[k] for k in (keys.BACKEND, "enable_prefix_caching", "batch_invariant", "batch_invariant_note",
                                "enforce_eager", "commit_every", "commit_seconds", "tensor_parallel_size",
                                "data_parallel_size")},
        keys.STOP: config.stop,
        keys.IGNORE_EOS: r.stops.ignore_eos,
        keys.STOP_TOKEN_IDS: list(r.stops.ids),
        "stop_token_source": r.stops.source,
        "bos_token_id": r.tokenizer.bos_token_id,
        "problems_file": str(config.problems),
        "problems_sha256": sha256_file(config.problems),
        "selection": {"start": config.start, "end": config.end, "limit": config.limit, "n_selected": len(plan.rows)},
        keys.EXCLUDED_TASK_IDS: sorted(excluded),
        keys.EXCLUDED: [excluded[k] for k in sorted(excluded)],
        keys.RUNS: [*(previous or {}).get(keys.RUNS, []), info],
    }


def totals(store: GenerationStore, *, complete: bool, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over every stored row; times summed over the runs that made them.

    ``generation_time_s`` is engine time (each run's first submission to its last finish, as of
    its last commit), so ``tokens_per_s`` is the rate the engine sustained.
    """
    table = store.table
    n_tokens = int(sum(table.column(keys.COL_N_COMPLETION_TOKENS).to_pylist()))
    gen_time, wall_time = (float(sum(float(run.get(k) or 0.0) for run in runs))
                           for k in (keys.GENERATION_TIME_S, keys.WALL_TIME_S))
    return {
        keys.N_TASKS: table.num_rows,
        keys.COMPLETE: complete,
        "n_prompt_tokens": int(sum(table.column(keys.COL_N_PROMPT_TOKENS).to_pylist())),
        keys.N_COMPLETION_TOKENS: n_tokens,
        keys.GENERATION_TIME_S: gen_time,
        keys.WALL_TIME_S: wall_time,
        keys.TOKENS_PER_S: n_tokens / gen_time if gen_time else 0.0,
        "creation_timestamp": _now(),
    }


class MetadataWriter:
    """Rewrites the metadata file with this run's progress: at the start, after every commit, at the end."""

    def __init__(self, store: GenerationStore, fixed: dict[str, Any], wall_start: float) -> None:
        self.store, self.fixed, self.wall_start = store, fixed, wall_start
        self.info = fixed[keys.RUNS][-1]
        self.engine: Engine | None = None
        self.load_time_s = 0.0
        store.write_metadata({**fixed, **totals(store, complete=False, runs=fixed[keys.RUNS])})

    def engine_started(self, load_time_s: float, engine: Engine) -> None:
        """Record the engine's start and what it reports about itself."""
        self.engine, self.load_time_s = engine, load_time_s
        self.info.update({"engine_load_time_s": load_time_s, "max_num_seqs": engine.max_num_seqs, **self._reported()})

    def __call__(self, stats: StreamStats, *, complete: bool = False) -> dict[str, Any]:
        """Record this run's totals so far (the ``on_commit`` of :func:`gen.stream.run_stream`).

        An engine that starts inside the run (the Ray backend's ``startup_s``) has that start moved
        from the generation time to ``engine_load_time_s``.
        """
        startup = float(getattr(self.engine, "startup_s", None) or 0.0)
        self.info.update({
            **self._reported(),
            "n_generated": stats.n_tasks,
            "n_commits": stats.n_commits,
            keys.N_COMPLETION_TOKENS: stats.n_completion_tokens,
            "engine_load_time_s": self.load_time_s + startup,
            keys.GENERATION_TIME_S: max(0.0, stats.engine_time_s - startup),
            keys.WALL_TIME_S: time.perf_counter() - self.wall_start,
        })
        metadata = {**self.fixed, "max_num_seqs": self.info["max_num_seqs"],
                    **totals(self.store, complete=complete, runs=self.fixed[keys.RUNS])}
        self.store.write_metadata(metadata)
        return metadata

    def _reported(self) -> dict[str, Any]:
        """What the engine reports about itself (the Ray backend's ``metadata()``), else nothing."""
        report = getattr(self.engine, "metadata", None)
        return dict(report()) if callable(report) else {}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
