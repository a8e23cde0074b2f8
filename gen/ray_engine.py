"""vLLM on a Ray cluster (Ray Data LLM) behind the streaming :class:`gen.engine.Engine` protocol.

The generate stage drives every engine the same way (:func:`gen.stream.run_stream`): add
every pending prompt, then ``step`` until nothing is unfinished, committing completions as
they come back. :class:`RayEngine` serves that protocol with a Ray Data LLM job:

- ``add_request`` only records ``(request id, prompt ids)``; the first ``step`` turns what was
  added into a dataset (``ray.data.from_items``), runs it through a ``vLLMEngineProcessorConfig``
  processor (``data_parallel_size`` engine replicas, each on ``tensor_parallel_size`` GPUs or a
  share of the CPUs) and iterates the output rows in a background thread that queues them;
  ``step`` returns what has arrived, waiting at most :data:`STEP_WAIT_S` so the driver's
  time-based commits still happen while every replica is busy;
- the exact prompt token ids go in (``tokenized_prompt``; the chat-template, tokenize and
  detokenize stages are off) and the exact generated ids come out (``generated_tokens``); Ray
  Data does not keep row order, so every row carries its request id (``str(task_id)``);
- sampling is the embedded engine's (:func:`sampling_row` mirrors
  :func:`gen.vllm_engine.sampling_params`) and so are the engine settings
  (:func:`engine_kwargs`), so the token ids are identical;
- Ray Data returns no finish reason, so it is derived from the ids (:func:`finish_reason`):
  vLLM checks its stop ids before the length limit, so a completion stopped iff its last id is
  one vLLM stops on.

Ray: with ``RAY_ADDRESS`` set (Ray's own convention) the engine joins that cluster; otherwise
it starts a local one for the run (``ray.init(address="local")``: never a stray cluster some
other process started on this machine). :meth:`RayEngine.close` disconnects, and stops the
local cluster, only when this engine connected; the job's actors (and their vLLM engines) end
with it.

Results come back per Ray Data batch (``batch_size`` rows, the batch's slowest completion
decides): a driver crash loses the batches in flight, a rerun submits only the missing tasks.
"""

from __future__ import annotations

import importlib
import math
import os
import queue
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from artifacts.errors import InputError
from artifacts.schema import generations as keys
from gen.config import RAY
from gen.device_policy import BATCH_INVARIANT_ENV, CPU_KVCACHE_ENV, CPU_RESERVED_ENV
from gen.engine import Completion, EngineConfig

INSTALL_HINT = "pip install 'pva-baseline[cluster]'"
RAY_ADDRESS_ENV = "RAY_ADDRESS"
CPU_BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"
# Rows per Ray Data batch: the unit in which completions come back (and are lost on a crash).
DEFAULT_BATCH_SIZE = 8
# On the CPU backend gpu_memory_utilization is the share of RAM that must be free at start;
# vLLM's 0.92 fails beside anything else (the KV cache itself is VLLM_CPU_KVCACHE_SPACE).
CPU_MEMORY_FRACTION = 0.25
STEP_WAIT_S = 1.0
# Output columns kept: our request id (a name the engine stage does not write: it writes its
# own "request_id"), and the stage's generated ids and per-request engine seconds.
ID_COLUMN = "pva_request_id"
TOKENS_COLUMN = "generated_tokens"
LLM_SECONDS_COLUMN = "time_taken_llm"
_DONE = object()  # the pump thread's end-of-wave marker


def require_ray() -> None:
    """Fail early, in one line naming the extra, when Ray (data, serve) cannot be imported.

    ``ray.serve`` is needed too: vLLM's Ray metrics logger, which the engine stage starts,
    imports it.

    Raises:
        InputError: Ray or one of the parts the backend uses is missing.
    """
    for module in ("ray", "ray.data.llm", "ray.serve"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InputError(
                f"the Ray backend (--backend ray, --data-parallel-size > 1) needs Ray ({module}: {exc}); "
                f"install the cluster extra: {INSTALL_HINT}"
            ) from None


def ray_version() -> str | None:
    """The installed Ray release, else None."""
    from artifacts.versions import package_version

    return package_version("ray")


def cluster_address() -> str | None:
    """The cluster named by ``RAY_ADDRESS``, or None (a local Ray for the run)."""
    return os.environ.get(RAY_ADDRESS_ENV) or None


@dataclass(frozen=True)
class RayCluster:
    """The Ray this process is connected to.

    Attributes:
        address: the GCS address (``ip:port``).
        started_here: whether this process connected (and must disconnect); a local cluster
            started for the run is then stopped with the connection.
        local: whether the cluster was started for this run (``RAY_ADDRESS`` unset).
    """

    address: str
    started_here: bool
    local: bool

    @property
    def resources(self) -> dict[str, float]:
        """The cluster's total resources (CPU, GPU, memory, ...), per-node entries left out."""
        import ray

        return {k: float(v) for k, v in sorted(ray.cluster_resources().items()) if not k.startswith("node:")}

    @property
    def n_nodes(self) -> int:
        import ray

        return sum(1 for node in ray.nodes() if node.get("Alive"))

    @property
    def device(self) -> str:
        """``cuda`` when the cluster has GPUs, else ``cpu`` (what the replicas will run on)."""
        return "cuda" if self.resources.get("GPU", 0) > 0 else "cpu"


_OWN: RayCluster | None = None  # the connection connect() made, which an engine may close


def connect(*, num_cpus: int | None = None) -> RayCluster:
    """Join the cluster at ``RAY_ADDRESS``, else start a local Ray; reuse a connection already made.

    A connection this module made is handed out as ``started_here`` until it is closed, so the
    engine that uses it closes it (also when :func:`cluster_device` made it).

    Args:
        num_cpus: CPUs of a local Ray (default: the cores this process may run on).

    Raises:
        InputError: Ray is missing.
    """
    global _OWN
    require_ray()
    import ray

    if ray.is_initialized():
        if _OWN is not None:
            return _OWN
        return RayCluster(ray.get_runtime_context().gcs_address, started_here=False, local=False)
    address = cluster_address()
    if address is not None:
        ray.init(address=address)
        _OWN = RayCluster(ray.get_runtime_context().gcs_address, started_here=True, local=False)
    else:
        # address="local" always starts a new cluster: ray.init() would join one some other
        # process started here with `ray start`. No dashboard: nothing reads it during a run.
        ray.init(address="local", num_cpus=num_cpus or len(os.sched_getaffinity(0)), include_dashboard=False)
        _OWN = RayCluster(ray.get_runtime_context().gcs_address, started_here=True, local=True)
    return _OWN


def disconnect() -> None:
    """Close the connection :func:`connect` made (a local Ray stops with it); others are left alone."""
    global _OWN
    if _OWN is not None:
        import ray

        ray.shutdown()
        _OWN = None


def cluster_device() -> str:
    """The device replicas will run on, for the generate stage's dtype and eager defaults.

    With ``RAY_ADDRESS`` unset the cluster is this machine (no Ray is started to find out);
    otherwise the cluster is asked (GPUs anywhere: ``cuda``).
    """
    if cluster_address() is None:
        from artifacts.device import detect_device

        return detect_device()
    return connect().device


def llm_batch_defaults(world_size: int) -> tuple[int, int]:
    """``(max_num_seqs, max_num_batched_tokens)`` that vLLM's offline ``LLM`` picks on this machine.

    The engine stage builds vLLM's async engine, whose defaults are the server's (on CPU 128
    sequences and 2048 batched tokens against ``LLM``'s 256 and 4096; on GPUs they depend on the
    card): other batches, so other floating-point sums. The replicas are given ``LLM``'s values,
    as vLLM itself computes them for the platform it runs on.
    """
    from vllm.engine.arg_utils import EngineArgs
    from vllm.usage.usage_lib import UsageContext

    batched_tokens, seqs = EngineArgs.get_batch_defaults(world_size)
    return int(seqs[UsageContext.LLM_CLASS]), int(batched_tokens[UsageContext.LLM_CLASS])


def replica_batch_defaults(bundle: Mapping[str, float], world_size: int, *, local: bool) -> tuple[int, int]:
    """:func:`llm_batch_defaults` where a replica runs: here for a local Ray, else in a Ray task
    holding one replica bundle's resources (a GPU node answers for its own card)."""
    if local:
        return llm_batch_defaults(world_size)
    import ray

    # Nested, so that cloudpickle ships it by value: the cluster's workers need not import this project.
    def probe(size: int) -> tuple[int, int]:
        from vllm.engine.arg_utils import EngineArgs
        from vllm.usage.usage_lib import UsageContext

        batched_tokens, seqs = EngineArgs.get_batch_defaults(size)
        return int(seqs[UsageContext.LLM_CLASS]), int(batched_tokens[UsageContext.LLM_CLASS])

    remote = ray.remote(num_cpus=min(1.0, bundle.get("CPU", 1.0)), num_gpus=bundle.get("GPU", 0.0))(probe)
    return tuple(ray.get(remote.remote(world_size)))  # type: ignore[return-value]


def engine_kwargs(
    config: EngineConfig, *, device: str, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None
) -> dict[str, Any]:
    """vLLM engine arguments of each replica: the embedded engine's (:class:`gen.vllm_engine.VllmEngine`).

    ``max_num_seqs`` and ``max_num_batched_tokens``: ``LLM``'s defaults (:func:`replica_batch_defaults`).
    Stats logging off, as ``LLM`` has it (the stage would otherwise log after every batch).
    """
    kwargs: dict[str, Any] = {
        "dtype": config.dtype,
        "max_model_len": config.max_model_len,
        "tensor_parallel_size": config.tensor_parallel_size,
        "enforce_eager": config.enforce_eager,
        "enable_prefix_caching": config.enable_prefix_caching,
        "seed": config.seed,
        "disable_log_stats": True,
    }
    if max_num_seqs is not None:
        kwargs["max_num_seqs"] = max_num_seqs
    if max_num_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = max_num_batched_tokens
    if config.revision is not None:
        kwargs["revision"] = config.revision
    if device == "cpu":
        kwargs["gpu_memory_utilization"] = CPU_MEMORY_FRACTION
    return kwargs


def sampling_row(config: EngineConfig) -> dict[str, Any]:
    """Per-row ``sampling_params``: greedy, the budget, the stop ids; no text (ids only).

    The same sampling as :func:`gen.vllm_engine.sampling_params` (``output_kind`` aside: the
    engine stage waits for the final output itself).
    """
    return {
        "temperature": 0.0,
        "max_tokens": config.max_new_tokens,
        "stop_token_ids": [int(i) for i in config.stop_token_ids],
        "ignore_eos": config.ignore_eos,
        "skip_special_tokens": True,
        "detokenize": False,
    }


def model_eos_ids(config: EngineConfig) -> frozenset[int]:
    """The ids vLLM stops on by itself unless ``ignore_eos``: the tokenizer's EOS and the generation config's.

    vLLM 0.32 sets the request's ``eos_token_id`` from the tokenizer and merges the generation
    config's ``eos_token_id`` list into the stop ids (``SamplingParams.update_from_generation_config``).
    """
    from transformers import AutoTokenizer

    from gen.stop_tokens import end_of_turn_ids

    tokenizer = AutoTokenizer.from_pretrained(config.model, revision=config.revision)
    ids = set(end_of_turn_ids(config.model, tokenizer, revision=config.revision).ids)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def finish_reason(token_ids: Sequence[int], stop_ids: Collection[int]) -> str:
    """``stop`` when the last id is one generation stops on, else ``length``.

    vLLM (``vllm.v1.core.sched.utils.check_stop``) tests the EOS and the stop ids before the
    token budget and the context, so a stop id that lands on the last allowed step is a stop.
    """
    return "stop" if token_ids and int(token_ids[-1]) in stop_ids else "length"


def replica_bundles(
    *, device: str, tensor_parallel_size: int, cpus_per_replica: float | None, cluster_cpus: float, data_parallel_size: int
) -> list[dict[str, float]]:
    """The Ray resources of one replica: one bundle per tensor-parallel worker.

    GPUs: one GPU and one CPU per worker. CPUs: an equal share of the cluster's CPUs per
    replica unless ``cpus_per_replica`` says otherwise (the share is what sets each replica's
    threads when several share a machine).

    Raises:
        InputError: the cluster has fewer CPUs than replicas.
    """
    if device != "cpu":
        return [{"GPU": 1.0, "CPU": 1.0} for _ in range(tensor_parallel_size)]
    if cpus_per_replica is None:
        share = math.floor(cluster_cpus / (data_parallel_size * tensor_parallel_size))
        if share < 1:
            raise InputError(
                f"--data-parallel-size {data_parallel_size}: the Ray cluster has only {cluster_cpus:g} CPUs"
            )
        cpus_per_replica = float(share)
    return [{"CPU": float(cpus_per_replica)} for _ in range(tensor_parallel_size)]


def forwarded_env(config: EngineConfig, *, device: str, data_parallel_size: int) -> dict[str, str]:
    """Environment variables every replica needs (its actor starts from the cluster's, not ours).

    The vLLM-CPU settings in force here go along. Several CPU replicas on one machine would
    each bind their threads to the same cores (vLLM's ``auto`` binding), so they run unbound
    instead, each with the threads of its Ray CPU share (``OMP_NUM_THREADS``, set by Ray).
    """
    env = {name: os.environ[name] for name in (CPU_KVCACHE_ENV, CPU_RESERVED_ENV, CPU_BIND_ENV) if os.environ.get(name)}
    if device == "cpu" and data_parallel_size > 1:
        env.setdefault(CPU_BIND_ENV, "nobind")
    if config.batch_invariant:
        env[BATCH_INVARIANT_ENV] = "1"  # read when vLLM starts, as VllmEngine sets it
    return env


def replica_share(n_requests: int, *, data_parallel_size: int, max_num_seqs: int) -> int:
    """Requests one replica may hold at once: its share of the wave, at most its ``max_num_seqs``.

    Ray Data hands work to a replica as soon as that one has started, up to this many requests:
    the replica up first must not take the whole wave while the others still load (the rest
    waits in Ray Data's queue, and any replica with room takes it, so one that finishes early
    takes more).
    """
    return max(1, min(max_num_seqs, math.ceil(n_requests / data_parallel_size)))


class RayEngine:
    """``data_parallel_size`` vLLM replicas run by Ray Data LLM, behind the streaming engine protocol.

    Args:
        config: the engine settings (the same object the embedded engine takes).
        data_parallel_size: engine replicas (the processor's fixed actor pool).
        device: ``cpu`` or ``cuda``; default the cluster's (:attr:`RayCluster.device`).
        batch_size: rows per Ray Data batch (completions come back a batch at a time).
        requests_per_replica: requests one replica holds at once; default
            :func:`replica_share` (its share of the wave, at most its ``max_num_seqs``).
        cpus_per_replica: CPU replicas' Ray CPUs (default an equal share of the cluster's).
        num_cpus: CPUs of a local Ray (default this machine's cores).
        stop_ids: the ids generation stops on, for the finish reason (default
            ``config.stop_token_ids`` plus the model's own EOS ids unless ``ignore_eos``).
        progress: show Ray Data's progress bars.

    Raises:
        InputError: Ray is missing, or the cluster cannot hold the replicas' CPUs.
    """

    max_num_seqs: int | None  # over every replica (the protocol's: sequences decoded at once)

    def __init__(
        self,
        config: EngineConfig,
        *,
        data_parallel_size: int = 1,
        device: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        requests_per_replica: int | None = None,
        cpus_per_replica: float | None = None,
        num_cpus: int | None = None,
        stop_ids: Collection[int] | None = None,
        progress: bool = False,
    ) -> None:
        if data_parallel_size < 1 or batch_size < 1 or (requests_per_replica is not None and requests_per_replica < 1):
            raise InputError("data_parallel_size, batch_size and requests_per_replica must be at least 1")
        self.config = config
        self.data_parallel_size = data_parallel_size
        self.batch_size = batch_size
        self.cluster = connect(num_cpus=num_cpus)
        try:
            self.device = device or self.cluster.device
            self._stop_ids = frozenset(int(i) for i in config.stop_token_ids) | (
                frozenset(int(i) for i in stop_ids) if stop_ids is not None
                else frozenset() if config.ignore_eos else model_eos_ids(config)
            )
            self.bundles = replica_bundles(
                device=self.device,
                tensor_parallel_size=config.tensor_parallel_size,
                cpus_per_replica=cpus_per_replica,
                cluster_cpus=self.cluster.resources.get("CPU", 0.0),
                data_parallel_size=data_parallel_size,
            )
            self.env = forwarded_env(config, device=self.device, data_parallel_size=data_parallel_size)
            self.replica_max_num_seqs, self.max_num_batched_tokens = replica_batch_defaults(
                self.bundles[0], config.tensor_parallel_size, local=self.cluster.local
            )
            self.max_num_seqs = self.replica_max_num_seqs * data_parallel_size
            # Snapshots for the metadata, which is also written after close() (Ray gone by then).
            self.cluster_resources: dict[str, float] = self.cluster.resources
            self.cluster_nodes = self.cluster.n_nodes
            import ray.data

            ray.data.DataContext.get_current().enable_progress_bars = progress
        except BaseException:
            self._disconnect()
            raise
        self.requests_per_replica = requests_per_replica
        self.wave_requests_per_replica: int | None = None  # what the last wave used
        self._sampling = sampling_row(config)
        self._waiting: dict[str, list[int]] = {}  # added, not yet submitted
        self._in_flight: set[str] = set()  # submitted, not yet returned
        self._results: queue.Queue[Any] = queue.Queue()
        self._pump: threading.Thread | None = None
        self._stop = threading.Event()
        self._wave_start: float | None = None
        self.startup_s: float | None = None  # first wave: its start to its first request entering an engine
        self.n_waves = 0

    # -- metadata ---------------------------------------------------------------------------

    @property
    def ray_version(self) -> str | None:
        return ray_version()

    def metadata(self) -> dict[str, Any]:
        """What the generate stage's metadata records about this backend (JSON-ready)."""
        return {
            keys.BACKEND: RAY,
            keys.RAY_VERSION: self.ray_version,
            "ray_address": self.cluster.address,
            "ray_local_cluster": self.cluster.local,
            "ray_cluster_nodes": self.cluster_nodes,
            keys.RAY_CLUSTER_RESOURCES: self.cluster_resources,
            "ray_replica_bundles": self.bundles,
            "ray_replica_max_num_seqs": self.replica_max_num_seqs,
            "ray_replica_max_num_batched_tokens": self.max_num_batched_tokens,
            "ray_batch_size": self.batch_size,
            "ray_requests_per_replica": self.wave_requests_per_replica,
            "ray_replica_env": self.env,
            "ray_startup_s": self.startup_s,
        }

    # -- the streaming protocol -------------------------------------------------------------

    def add_request(self, request_id: str, prompt_token_ids: Sequence[int]) -> None:
        if request_id in self._waiting or request_id in self._in_flight:
            raise ValueError(f"request {request_id!r} is already pending")
        # Ids read from parquet are numpy ints; vLLM (and Arrow's list column) want Python ints.
        self._waiting[request_id] = [int(i) for i in prompt_token_ids]

    def has_unfinished_requests(self) -> bool:
        return bool(self._waiting or self._in_flight)

    def step(self) -> list[Completion]:
        """Return the completions that arrived, waiting up to :data:`STEP_WAIT_S` for the first.

        Requests added while a wave runs form the next wave (a new processor run, so new
        engine starts); :func:`gen.stream.run_stream` adds everything before the first step.

        Raises:
            RuntimeError: the Ray Data job failed, or ended with requests unreturned.
        """
        if self._pump is None and self._waiting:
            self._start_wave()
        if self._pump is None:
            return []
        try:
            items = [self._results.get(timeout=STEP_WAIT_S)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._results.get_nowait())
            except queue.Empty:
                break
        done: list[Completion] = []
        for item in items:
            if item is _DONE:
                self._pump.join()
                self._pump = None
                if self._in_flight:
                    missing = sorted(self._in_flight)
                    raise RuntimeError(f"the Ray Data job ended without {len(missing)} request(s): {missing[:10]}")
            elif isinstance(item, BaseException):
                raise RuntimeError(f"the Ray Data job failed: {type(item).__name__}: {item}") from item
            else:
                done.append(self._completion(item))
        return done

    def close(self) -> None:
        """Stop the job: disconnect from Ray (stopping a local one) when this engine connected.

        The job's actors, and the vLLM engines in them, end with the connection. A Ray
        connection made by the caller stays; a wave still running is then left to finish.
        """
        if self._pump is not None and not self._in_flight:
            # Everything came back: let Ray Data wind the job down before Ray goes.
            self._pump.join(timeout=60)
        self._stop.set()
        self._disconnect()
        if self._pump is not None:
            self._pump.join(timeout=30)
            self._pump = None

    # -- internals --------------------------------------------------------------------------

    def _disconnect(self) -> None:
        if self.cluster.started_here:
            disconnect()
            self.cluster = RayCluster(self.cluster.address, started_here=False, local=self.cluster.local)

    def _build_processor(self, requests_per_replica: int) -> Any:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        batches = max(1, math.ceil(requests_per_replica / self.batch_size))
        config = vLLMEngineProcessorConfig(
            model_source=self.config.model,
            engine_kwargs=engine_kwargs(
                self.config, device=self.device, max_num_seqs=self.replica_max_num_seqs,
                max_num_batched_tokens=self.max_num_batched_tokens,
            ),
            batch_size=self.batch_size,
            # A fixed pool of n replicas (an int n is a pool autoscaling from 1, which need not grow).
            concurrency=(self.data_parallel_size, self.data_parallel_size),
            max_concurrent_batches=batches,
            max_tasks_in_flight_per_actor=batches,
            placement_group_config={"bundles": self.bundles},
            runtime_env={"env_vars": self.env} if self.env else None,
            # Token ids in, token ids out: the prompts were rendered and tokenized by the stage.
            chat_template_stage=False,
            tokenize_stage=False,
            detokenize_stage=False,
        )
        # Defined here, not at module level, and naming the columns literally (no module
        # globals), so that cloudpickle ships it by value: Ray's workers need not import this project.
        def keep_ids(row: dict[str, Any]) -> dict[str, Any]:
            return {
                "pva_request_id": row["pva_request_id"],
                "generated_tokens": row["generated_tokens"],
                "time_taken_llm": row["time_taken_llm"],
            }

        # The identity steps around the engine need no CPU of their own: the replicas may hold
        # every CPU of the cluster, and a step that waited for one would never run.
        light = {"num_cpus": 0}
        return build_processor(config, postprocess=keep_ids, preprocess_map_kwargs=light, postprocess_map_kwargs=light)

    def _start_wave(self) -> None:
        import ray.data

        rows = [
            {ID_COLUMN: request_id, "tokenized_prompt": ids, "sampling_params": dict(self._sampling)}
            for request_id, ids in self._waiting.items()
        ]
        self._in_flight.update(self._waiting)
        self._waiting = {}
        # About one block per batch, so batches reach the replicas as separate tasks.
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / self.batch_size)))
        per_replica = self.requests_per_replica or replica_share(
            len(rows), data_parallel_size=self.data_parallel_size, max_num_seqs=self.replica_max_num_seqs
        )
        self.wave_requests_per_replica = per_replica
        dataset = self._build_processor(per_replica)(dataset)
        self._wave_start = time.perf_counter()
        self.n_waves += 1
        self._pump = threading.Thread(target=self._iterate, args=(dataset,), name="ray-engine-results", daemon=True)
        self._pump.start()

    def _iterate(self, dataset: Any) -> None:
        """Background thread: queue every output row, then :data:`_DONE` (or the exception)."""
        try:
            for row in dataset.iter_rows():
                if self._stop.is_set():
                    return
                self._results.put(row)
        except BaseException as exc:  # handed to step(), which raises it in the driver
            if not self._stop.is_set():
                self._results.put(exc)
            return
        self._results.put(_DONE)

    def _completion(self, row: Mapping[str, Any]) -> Completion:
        request_id = str(row[ID_COLUMN])
        if request_id not in self._in_flight:
            raise RuntimeError(f"the Ray Data job returned request {request_id!r}, which is not in flight")
        self._in_flight.discard(request_id)
        if self.startup_s is None and self._wave_start is not None:
            # The row's LLM time starts when its request reached an engine; the first batch
            # reaches an engine as soon as one has started.
            llm_s = float(row.get(LLM_SECONDS_COLUMN) or 0.0)
            self.startup_s = max(0.0, time.perf_counter() - self._wave_start - llm_s)
        ids = tuple(int(i) for i in row[TOKENS_COLUMN])
        return Completion(request_id=request_id, token_ids=ids, finish_reason=finish_reason(ids, self._stop_ids))

