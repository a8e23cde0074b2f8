"""vLLM replicas as a Ray Data LLM job behind the streaming :class:`gen.engine.Engine` protocol.

The first ``step`` submits every added prompt as one ``ray.data.llm`` job (``data_parallel_size``
replicas) and a background thread queues its output rows; ``step`` returns what arrived within
:data:`STEP_WAIT_S`, so time-based commits go on while the replicas work. Exact ids go in
(``tokenized_prompt``) and come out (``generated_tokens``); every row carries its request id, as
Ray Data does not keep order. Sampling and engine settings are the embedded engine's, vLLM's
``LLM`` scheduler defaults included, so the token ids are the same. Ray Data returns no finish
reason: vLLM checks stop ids before the length limit, so a completion stopped iff its last id is
one vLLM stops on.

With ``RAY_ADDRESS`` set the engine joins that cluster, else it starts a local Ray for the run
(``address="local"``: never a stray cluster another process started here). Only a connection this
module made is closed (a local Ray stops with it, and the job's actors and engines end with it).
"""

from __future__ import annotations

import importlib
import math
import os
import queue
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from artifacts.errors import InputError
from artifacts.schema import generations as keys
from artifacts.versions import package_version
from gen.config import RAY
from gen.device_policy import BATCH_INVARIANT_ENV, CPU_ENV
from gen.engine import Completion, EngineConfig

INSTALL_HINT = "pip install 'pva-baseline[cluster]'"
RAY_ADDRESS_ENV = "RAY_ADDRESS"
CPU_BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"
DEFAULT_BATCH_SIZE = 8  # rows per Ray Data batch: the unit results come back in (and a crash loses)
# On CPU gpu_memory_utilization is the share of RAM that must be free at start; vLLM's 0.92 fails
# beside anything else (the KV cache itself is VLLM_CPU_KVCACHE_SPACE).
CPU_MEMORY_FRACTION = 0.25
STEP_WAIT_S = 1.0
ID_COLUMN = "pva_request_id"  # not "request_id": the engine stage writes its own
_DONE = object()  # the pump thread's end-of-job marker
_started_here = False  # whether connect() made the connection, which disconnect() then ends


def require_ray() -> None:
    """Fail in one line naming the extra when Ray, Ray Data LLM or Ray Serve (vLLM's Ray metrics need it) is missing."""
    for module in ("ray", "ray.data.llm", "ray.serve"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InputError(
                f"the Ray backend (--backend ray, --data-parallel-size > 1) needs Ray ({module}: {exc}); "
                f"install the cluster extra: {INSTALL_HINT}"
            ) from None


def cluster_address() -> str | None:
    """The cluster named by ``RAY_ADDRESS``, or None (a local Ray for the run)."""
    return os.environ.get(RAY_ADDRESS_ENV) or None


def connect() -> None:
    """Join the cluster at ``RAY_ADDRESS``, else start a local Ray on this process's cores; keep a connection made."""
    global _started_here
    require_ray()
    import ray

    if ray.is_initialized():
        return
    if cluster_address() is not None:
        ray.init(address=cluster_address())
    else:  # no dashboard: nothing reads it during a run
        ray.init(address="local", num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False)
    _started_here = True


def disconnect() -> None:
    """End the connection :func:`connect` made (a local Ray stops with it); leave others alone."""
    global _started_here
    if _started_here:
        import ray

        ray.shutdown()
        _started_here = False


def cluster_resources() -> dict[str, float]:
    """The connected cluster's total resources (CPU, GPU, memory, ...), per-node entries left out."""
    import ray

    return {k: float(v) for k, v in sorted(ray.cluster_resources().items()) if not k.startswith("node:")}


def cluster_device() -> str:
    """The replicas' device: without ``RAY_ADDRESS`` this machine's (no Ray started), else ``cuda`` when the cluster
    has GPUs."""
    if cluster_address() is None:
        from artifacts.device import detect_device

        return detect_device()
    connect()
    return "cuda" if cluster_resources().get("GPU", 0) > 0 else "cpu"


def replica_batch_defaults(bundle: Mapping[str, float], world_size: int, *, local: bool) -> tuple[int, int]:
    """``(max_num_seqs, max_num_batched_tokens)`` of vLLM's offline ``LLM`` where a replica runs.

    The engine stage builds vLLM's async engine, whose defaults are the server's (other batches,
    so other floating-point sums), so the replicas get ``LLM``'s. A local Ray answers here; a
    cluster in a Ray task holding one replica bundle (a GPU node answers for its own card).
    """

    # Nested, so cloudpickle ships it by value: the cluster's workers need not import this project.
    def probe(size: int) -> tuple[int, int]:
        from vllm.engine.arg_utils import EngineArgs
        from vllm.usage.usage_lib import UsageContext

        batched_tokens, seqs = EngineArgs.get_batch_defaults(size)
        return int(seqs[UsageContext.LLM_CLASS]), int(batched_tokens[UsageContext.LLM_CLASS])

    if local:
        return probe(world_size)
    import ray

    remote = ray.remote(num_cpus=min(1.0, bundle.get("CPU", 1.0)), num_gpus=bundle.get("GPU", 0.0))(probe)
    return tuple(ray.get(remote.remote(world_size)))  # type: ignore[return-value]


def engine_kwargs(
    config: EngineConfig, *, device: str, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None
) -> dict[str, Any]:
    """vLLM engine arguments of each replica: the embedded engine's, stats logging off as ``LLM`` has it."""
    kwargs: dict[str, Any] = {
        "dtype": config.dtype,
        "max_model_len": config.max_model_len,
        "tensor_parallel_size": config.tensor_parallel_size,
        "enforce_eager": config.enforce_eager,
        "enable_prefix_caching": config.enable_prefix_caching,
        "seed": config.seed,
        "disable_log_stats": True,
    }
    optional = {"max_num_seqs": max_num_seqs, "max_num_batched_tokens": max_num_batched_tokens,
                "revision": config.revision}
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    if device == "cpu":
        kwargs["gpu_memory_utilization"] = CPU_MEMORY_FRACTION
    return kwargs


def sampling_row(config: EngineConfig) -> dict[str, Any]:
    """Per-row ``sampling_params``: :func:`gen.vllm_engine.sampling_params` with ids only (no text)."""
    return {
        "temperature": 0.0,
        "max_tokens": config.max_new_tokens,
        "stop_token_ids": [int(i) for i in config.stop_token_ids],
        "ignore_eos": config.ignore_eos,
        "skip_special_tokens": True,
        "detokenize": False,
    }


def model_eos_ids(config: EngineConfig) -> frozenset[int]:
    """The ids vLLM 0.32 stops on by itself unless ``ignore_eos``: the tokenizer's EOS and the generation config's."""
    from transformers import AutoTokenizer

    from gen.stop_tokens import end_of_turn_ids

    tokenizer = AutoTokenizer.from_pretrained(config.model, revision=config.revision)
    ids = set(end_of_turn_ids(config.model, tokenizer, revision=config.revision).ids)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def finish_reason(token_ids: Sequence[int], stop_ids: Collection[int]) -> str:
    """``stop`` when the last id is one generation stops on, else ``length`` (vLLM's ``check_stop`` order)."""
    return "stop" if token_ids and int(token_ids[-1]) in stop_ids else "length"


def replica_bundles(
    *, device: str, tensor_parallel_size: int, cluster_cpus: float, data_parallel_size: int
) -> list[dict[str, float]]:
    """One Ray bundle per tensor-parallel worker: a GPU and a CPU, or on CPU an equal share of the cluster's CPUs.

    Raises:
        InputError: the cluster has fewer CPUs than replicas.
    """
    if device != "cpu":
        return [{"GPU": 1.0, "CPU": 1.0} for _ in range(tensor_parallel_size)]
    share = math.floor(cluster_cpus / (data_parallel_size * tensor_parallel_size))
    if share < 1:
        raise InputError(f"--data-parallel-size {data_parallel_size}: the Ray cluster has only {cluster_cpus:g} CPUs")
    return [{"CPU": float(share)} for _ in range(tensor_parallel_size)]


def forwarded_env(config: EngineConfig, *, device: str, data_parallel_size: int) -> dict[str, str]:
    """Environment every replica needs (its actor starts from the cluster's): the vLLM-CPU settings in force here.

    Several CPU replicas on one machine would bind their threads to the same cores (vLLM's
    ``auto``), so they run unbound, each with its Ray CPU share's threads (``OMP_NUM_THREADS``).
    """
    env = {}
    if device == "cpu":
        env = {name: os.environ[name] for name in (*CPU_ENV, CPU_BIND_ENV) if os.environ.get(name)}
        if data_parallel_size > 1:
            env.setdefault(CPU_BIND_ENV, "nobind")
    if config.batch_invariant:
        env[BATCH_INVARIANT_ENV] = "1"  # read when vLLM starts, as VllmEngine sets it
    return env


def replica_share(n_requests: int, *, data_parallel_size: int, max_num_seqs: int) -> int:
    """Requests one replica may hold at once: its share of the job, at most its ``max_num_seqs``.

    The replica up first must not take every request while the others still load; the rest
    waits in Ray Data's queue for any replica with room.
    """
    return max(1, min(max_num_seqs, math.ceil(n_requests / data_parallel_size)))


class RayEngine:
    """``data_parallel_size`` vLLM replicas run by Ray Data LLM, behind the streaming engine protocol.

    Args:
        config: the engine settings (the embedded engine's).
        data_parallel_size: replicas (a fixed actor pool).
        device: ``cpu`` or ``cuda`` [default: ``cuda`` when the cluster has GPUs].
        batch_size: rows per Ray Data batch (completions come back a batch at a time).

    Raises:
        InputError: Ray is missing, or the cluster has fewer CPUs than replicas.
    """

    def __init__(self, config: EngineConfig, *, data_parallel_size: int = 1, device: str | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        connect()
        try:
            import ray
            import ray.data

            # Snapshots for the metadata, which is also written after close() (Ray gone by then).
            self.resources = cluster_resources()
            self.nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
            self.address = ray.get_runtime_context().gcs_address
            self.local = _started_here and cluster_address() is None
            self.device = device or ("cuda" if self.resources.get("GPU", 0) > 0 else "cpu")
            eos = frozenset() if config.ignore_eos else model_eos_ids(config)
            self._stop_ids = frozenset(config.stop_token_ids) | eos  # for the finish reason
            self.bundles = replica_bundles(device=self.device, tensor_parallel_size=config.tensor_parallel_size,
                                           cluster_cpus=self.resources.get("CPU", 0.0),
                                           data_parallel_size=data_parallel_size)
            self.env = forwarded_env(config, device=self.device, data_parallel_size=data_parallel_size)
            self.replica_max_num_seqs, self.max_num_batched_tokens = replica_batch_defaults(
                self.bundles[0], config.tensor_parallel_size, local=self.local)
            ray.data.DataContext.get_current().enable_progress_bars = False
        except BaseException:
            disconnect()
            raise
        self.config, self.data_parallel_size, self.batch_size = config, data_parallel_size, batch_size
        self.max_num_seqs: int | None = self.replica_max_num_seqs * data_parallel_size  # over every replica
        self.requests_per_replica: int | None = None  # set when the job starts
        self.startup_s: float | None = None  # the job's start to its first request entering an engine
        self._waiting: dict[str, list[int]] = {}  # added, not yet submitted
        self._results: queue.Queue[Any] = queue.Queue()
        self._pump: threading.Thread | None = None
        self._stop = threading.Event()
        self._job_start = 0.0

    def metadata(self) -> dict[str, Any]:
        """What the generate stage's metadata records about this backend (JSON-ready)."""
        return {
            keys.BACKEND: RAY,
            keys.RAY_VERSION: package_version("ray"),
            "ray_address": self.address,
            "ray_local_cluster": self.local,
            "ray_cluster_nodes": self.nodes,
            keys.RAY_CLUSTER_RESOURCES: self.resources,
            "ray_replica_bundles": self.bundles,
            "ray_replica_max_num_seqs": self.replica_max_num_seqs,
            "ray_replica_max_num_batched_tokens": self.max_num_batched_tokens,
            "ray_batch_size": self.batch_size,
            "ray_requests_per_replica": self.requests_per_replica,
            "ray_replica_env": self.env,
            "ray_startup_s": self.startup_s,
        }

    def add_request(self, request_id: str, prompt_token_ids: Sequence[int]) -> None:
        # Ids read from parquet are numpy ints; Arrow's list column and vLLM want Python ints.
        self._waiting[request_id] = [int(i) for i in prompt_token_ids]

    def has_unfinished_requests(self) -> bool:
        """Whether requests wait or a job runs (which ends once every row came back)."""
        return bool(self._waiting) or self._pump is not None

    def step(self) -> list[Completion]:
        """The completions that arrived, waiting up to :data:`STEP_WAIT_S` for the first.

        Requests added while a job runs form the next job (new engine starts).

        Raises:
            RuntimeError: the Ray Data job failed.
        """
        if self._pump is None and self._waiting:
            self._start_job()
        try:
            items = [self._results.get(timeout=STEP_WAIT_S)]
        except queue.Empty:
            return []
        while not self._results.empty():
            items.append(self._results.get_nowait())
        done: list[Completion] = []
        for item in items:
            if isinstance(item, BaseException):
                raise RuntimeError(f"the Ray Data job failed: {type(item).__name__}: {item}") from item
            if item is _DONE:
                self._pump.join()
                self._pump = None
            else:
                done.append(self._completion(item))
        return done

    def close(self) -> None:
        """Disconnect from Ray when this module connected; a connection the caller made stays, and its job runs on."""
        self._stop.set()
        disconnect()
        if self._pump is not None:
            self._pump.join(timeout=30)
            self._pump = None

    def _processor(self) -> Any:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        batches = max(1, math.ceil(self.requests_per_replica / self.batch_size))
        config = vLLMEngineProcessorConfig(
            model_source=self.config.model,
            engine_kwargs=engine_kwargs(self.config, device=self.device, max_num_seqs=self.replica_max_num_seqs,
                                        max_num_batched_tokens=self.max_num_batched_tokens),
            batch_size=self.batch_size,
            # A fixed pool of n replicas (an int n autoscales from 1, and need not grow).
            concurrency=(self.data_parallel_size, self.data_parallel_size),
            max_concurrent_batches=batches,
            max_tasks_in_flight_per_actor=batches,
            placement_group_config={"bundles": self.bundles},
            runtime_env={"env_vars": self.env} if self.env else None,
            chat_template_stage=False,  # token ids in, token ids out: the stage tokenized the prompts
            tokenize_stage=False,
            detokenize_stage=False,
        )

        # Local and naming its columns literally, so cloudpickle ships it by value: Ray's workers
        # need not import this project.
        def keep_ids(row: dict[str, Any]) -> dict[str, Any]:
            return {name: row[name] for name in ("pva_request_id", "generated_tokens", "time_taken_llm")}

        # The steps around the engine take no CPU: the replicas may hold every CPU of the cluster.
        light = {"num_cpus": 0}
        return build_processor(config, postprocess=keep_ids, preprocess_map_kwargs=light, postprocess_map_kwargs=light)

    def _start_job(self) -> None:
        import ray.data

        rows = [{ID_COLUMN: request_id, "tokenized_prompt": ids, "sampling_params": sampling_row(self.config)}
                for request_id, ids in self._waiting.items()]
        self._waiting = {}
        self.requests_per_replica = replica_share(len(rows), data_parallel_size=self.data_parallel_size,
                                                  max_num_seqs=self.replica_max_num_seqs)
        # About one block per batch, so batches reach the replicas as separate tasks.
        dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / self.batch_size))
        dataset = self._processor()(dataset)
        self._job_start = time.perf_counter()
        self._pump = threading.Thread(target=self._iterate, args=(dataset,), name="ray-engine-results", daemon=True)
        self._pump.start()

    def _iterate(self, dataset: Any) -> None:
        """Background thread: queue every output row, then :data:`_DONE` (or the exception, which ``step`` raises)."""
        try:
            for row in dataset.iter_rows():
                if self._stop.is_set():
                    return
                self._results.put(row)
        except BaseException as exc:
            if not self._stop.is_set():
                self._results.put(exc)
            return
        self._results.put(_DONE)

    def _completion(self, row: Mapping[str, Any]) -> Completion:
        if self.startup_s is None:
            # A row's LLM time starts when it reached an engine; the first batch does as soon as one has started.
            self.startup_s = max(0.0, time.perf_counter() - self._job_start - float(row.get("time_taken_llm") or 0.0))
        ids = tuple(int(i) for i in row["generated_tokens"])
        return Completion(str(row[ID_COLUMN]), ids, finish_reason(ids, self._stop_ids))
