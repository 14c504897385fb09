"""Contract types shared by the search (optimizer) and the runners.

Everything that crosses the boundary between "what to try" and "how to run it" is defined here as
a frozen dataclass: the `Candidate` the search proposes, where it runs (`NodeGroup`,
`Placement`), what load to send (`Workload`, optionally with a `LoadSearch` for the highest load
that holds its `SloLimit`s, and further workloads measured on the same engine start), what comes
back (`TrialOutcome` with `Metrics` or a `Crash`, and per workload a `WorkloadRun` with its
`LoadCurve`), and the engine-neutral `ServingConfig` that an engine adapter resolves a candidate
into (engine defaults applied) for the simulator (defined in `runners.serving_config`, and
importable from here like the rest of the contract). This module imports nothing from optuna or
optimizer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from runners.catalog.quant import QuantFormat
from runners.serving_config import EngineName as EngineName
from runners.serving_config import ServingConfig as ServingConfig
from runners.serving_config import WeightDtype as WeightDtype

CheckpointFormat = QuantFormat
"""A candidate's checkpoint format (``bf16``, ``fp8``, ``int8``, ``awq``, ``gptq``, ``mxfp4``,
``nvfp4``): the space file's variant key; details come from the checkpoint's own files."""
SettingValue = int | float | str | bool


@dataclass(frozen=True)
class Candidate:
    """One configuration to try, as the engine's own settings.

    `settings` holds engine-native setting names (the flag without its leading dashes, e.g.
    ``max-num-seqs``) and the value the search chose; a setting that is absent takes the
    engine's default. `checkpoint` is what the engine loads (a Hugging Face repo id);
    `weight_dtype` its format (how its weights are quantized, `CheckpointFormat`).
    """

    engine: EngineName
    engine_version: str
    model: str
    checkpoint: str
    weight_dtype: CheckpointFormat
    settings: tuple[tuple[str, SettingValue], ...] = ()

    def settings_dict(self) -> dict[str, SettingValue]:
        return dict(self.settings)

    @staticmethod
    def make(
        engine: EngineName,
        engine_version: str,
        model: str,
        checkpoint: str,
        weight_dtype: CheckpointFormat,
        settings: Mapping[str, SettingValue],
    ) -> Candidate:
        return Candidate(
            engine, engine_version, model, checkpoint, weight_dtype, tuple(settings.items())
        )


@dataclass(frozen=True)
class NodeGroup:
    """A set of identical GPU nodes that trials are placed on. `inter_node_gb_s` is each
    GPU's share of the network between the nodes (GB/s, one direction; None: the GPU's
    typical figure, `GpuSpec.inter_node_gb_s`)."""

    name: str
    gpu: str
    gpus_per_node: int
    nodes: int = 1
    inter_node_gb_s: float | None = None

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.nodes


@dataclass(frozen=True)
class NodeSlot:
    """One node of a placement: the address other nodes reach it at, and its GPU ids."""

    host: str
    gpu_ids: tuple[int, ...]


@dataclass(frozen=True)
class Placement:
    """Where one trial runs: its node group and the GPU ids it was given there.

    `gpu_ids` are on the first node (rank 0, the one that serves), whose engine listens on
    `host`. An instance that spans nodes also holds `others`: the further nodes (ranks 1, 2,
    ...), each reached at its own address, with its GPU ids there; `head_address` is the
    address they reach rank 0 at and `dist_port` the port of the engine's distributed
    rendezvous on it (0: the engine's default). `others_started` says that the pool's own
    workers, one per node, start the processes of `others` (on Ray); otherwise the runner
    starts them itself. `node_group` then has one node per node held.
    """

    node_group: NodeGroup
    gpu_ids: tuple[int, ...]
    host: str = "127.0.0.1"
    others: tuple[NodeSlot, ...] = ()
    head_address: str = ""
    dist_port: int = 0
    others_started: bool = False

    @property
    def nodes(self) -> tuple[NodeSlot, ...]:
        """Every node held, rank 0 first (rank 0 at `head_address`, or `host` when unset)."""
        return (NodeSlot(self.head_address or self.host, self.gpu_ids), *self.others)

    @property
    def gpu_count(self) -> int:
        return sum(len(node.gpu_ids) for node in self.nodes)


DatasetName = Literal["sharegpt-like", "random", "sharegpt", "jsonl", "csv", "mooncake", "azure"]


LoadKnob = Literal["request_rate", "max_concurrency"]


@dataclass(frozen=True)
class SloLimit:
    """A bound on one metric of a run: `metric` is a key of `Metrics.flat()` (``p99_ttft_ms``,
    ``output_throughput_tok_s``, ...), a throughput key with ``_per_gpu``, or
    ``failed_fraction``; exactly one of `max` and `min` is set."""

    metric: str
    max: float | None = None
    min: float | None = None

    @property
    def name(self) -> str:
        bound = f"<= {self.max:g}" if self.max is not None else f">= {self.min:g}"
        return f"{self.metric} {bound}"

    def value(self, metrics: Metrics) -> float:
        if self.metric == "failed_fraction":
            return metrics.failed / max(1, metrics.completed + metrics.failed)
        flat = metrics.flat()
        if self.metric.endswith("_per_gpu"):
            return flat[self.metric.removesuffix("_per_gpu")] / max(1, metrics.num_gpus)
        return flat[self.metric]

    def excess(self, metrics: Metrics) -> float:
        """How far the run is past the bound (<= 0: the SLO holds)."""
        value = self.value(metrics)
        return value - self.max if self.max is not None else (self.min or 0.0) - value

    def holds(self, metrics: Metrics) -> bool:
        return self.excess(metrics) <= 0


@dataclass(frozen=True)
class LoadSearch:
    """Find the highest load at which every SLO of `slos` holds, on one engine start.

    `knob` is what is varied: the mean request rate of the workload's request list (the same
    requests re-timed, `runners.workload.at_load`) or the client's max concurrency. The first
    probe sends the list with the knob unbounded (every request at once, or no concurrency
    limit); when every SLO holds there, that is the answer. Otherwise the load rises from
    `start` by `growth` while the SLOs hold (up to twice the first probe's request rate, or the
    number of requests), falls by `growth` while they break when `start` already breaks, then
    bisects between the highest load that held and the lowest that broke until the two are
    within `tolerance` of each other (relative; concurrency stops 1 apart). `start` None: an
    eighth of the first probe's request throughput (requests/s), or concurrency 1. At most
    `max_probes` measurements in all (`runners.load_search`). `skip`: growth steps the search
    skips above `start` (it starts at `start` x `growth` ** `skip`; screening's coarse search,
    `runners.load_search.coarse`).
    """

    slos: tuple[SloLimit, ...]
    knob: LoadKnob = "request_rate"
    start: float | None = None
    growth: float = 2.0
    tolerance: float = 0.05
    max_probes: int = 10
    skip: int = 0


@dataclass(frozen=True)
class Workload:
    """What load to send, with `vllm bench serve` semantics.

    `dataset` is a synthetic source (``sharegpt-like``, ``random``) or a file format read from
    `path` (an absolute path, readable where the trial runs): ``sharegpt``, ``jsonl``, ``csv``,
    ``mooncake``, ``azure`` (`runners.workload.sources`). `request_rate` is requests per
    second; ``math.inf`` sends every request at t=0; a trace with timestamps is replayed at its
    own times multiplied by `time_scale`, inside the window of trace time `window_start_s` ..
    `window_start_s + window_s`. `max_concurrency` is the client-side limit (None =
    unlimited). `burstiness` is the gamma shape of finite-rate arrivals (1 = Poisson).
    `prefix_groups` groups of requests share a prefix of `prefix_len` tokens; `turns` > 1 makes
    multi-turn conversations. `hash_block_size` is the tokens per hash id of a trace's blocks.
    `tokenizer` counts text prompts: a local model folder or Hugging Face id that must load
    from local files, or "" for the estimate of `runners.workload.tokens`.
    `draft_acceptance_rate` is the per-token acceptance of speculative drafts on this data.
    `load_search` (None: send the list as it is) asks the runner for the highest load that
    holds its SLOs. `also` are further workloads measured after this one on the same engine
    start (a study with several workloads); the outcome's `workloads` then has one
    `WorkloadRun` each. Neither changes the request list (`runners.workload.make_requests`).
    """

    name: str
    dataset: DatasetName
    num_prompts: int
    input_len: int | None = None
    output_len: int | None = None
    request_rate: float = math.inf
    max_concurrency: int | None = None
    seed: int = 0
    burstiness: float = 1.0
    prefix_len: int = 0
    prefix_groups: int = 0
    turns: int = 1
    draft_acceptance_rate: float = 0.7
    path: str = ""
    time_scale: float = 1.0
    window_start_s: float = 0.0
    window_s: float = math.inf
    hash_block_size: int = 512
    tokenizer: str = ""
    load_search: LoadSearch | None = None
    also: tuple[Workload, ...] = ()

    def alone(self) -> Workload:
        """This workload's own request list, without a load search or further workloads."""
        if self.load_search is None and not self.also:
            return self
        return dataclasses.replace(self, load_search=None, also=())


@dataclass(frozen=True)
class Distribution:
    """Summary of one latency metric in milliseconds, as `vllm bench serve` reports it."""

    mean: float
    median: float
    std: float
    p90: float
    p95: float
    p99: float

    def percentile(self, p: int) -> float:
        values = {50: self.median, 90: self.p90, 95: self.p95, 99: self.p99}
        return values[p]


LatencyMetric = Literal["ttft", "tpot", "itl", "e2el"]


@dataclass(frozen=True)
class Metrics:
    """Aggregates of one benchmark run (formulas in `runners.bench.metrics.summarize`).

    Throughputs are for everything that served the workload (all replicas together), and
    `num_gpus` says how many GPUs that was.
    """

    completed: int
    failed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput_req_s: float
    output_throughput_tok_s: float
    total_token_throughput_tok_s: float
    num_gpus: int
    ttft_ms: Distribution
    tpot_ms: Distribution
    itl_ms: Distribution
    e2el_ms: Distribution

    def latency(self, metric: LatencyMetric) -> Distribution:
        by_name = {
            "ttft": self.ttft_ms,
            "tpot": self.tpot_ms,
            "itl": self.itl_ms,
            "e2el": self.e2el_ms,
        }
        return by_name[metric]

    def flat(self) -> dict[str, float]:
        """All values as ``name -> number`` (e.g. ``p99_tpot_ms``), the keys of vLLM bench JSON."""
        out: dict[str, float] = {
            "completed": float(self.completed),
            "failed": float(self.failed),
            "duration_s": self.duration_s,
            "total_input_tokens": float(self.total_input_tokens),
            "total_output_tokens": float(self.total_output_tokens),
            "request_throughput_req_s": self.request_throughput_req_s,
            "output_throughput_tok_s": self.output_throughput_tok_s,
            "total_token_throughput_tok_s": self.total_token_throughput_tok_s,
            "num_gpus": float(self.num_gpus),
        }
        names: tuple[LatencyMetric, ...] = ("ttft", "tpot", "itl", "e2el")
        for name in names:
            dist = self.latency(name)
            for stat in ("mean", "median", "std", "p90", "p95", "p99"):
                out[f"{stat}_{name}_ms"] = getattr(dist, stat)
        return out


class CrashClass(StrEnum):
    """Why a configuration did not serve. The value is what the study records as `crash_class`."""

    WEIGHTS_OOM = "oom:weights"
    NO_KV_MEMORY = "oom:no_kv_memory"
    MEMORY_RESERVATION = "oom:memory_reservation"  # less free memory than the engine reserves
    KV_TOO_SMALL = "oom:kv_below_max_model_len"
    RUNTIME_OOM = "oom:runtime"
    TP_HEADS = "invalid:tp_heads"
    FP8_BLOCK_SHARD = "invalid:fp8_block_shard"
    TOO_MANY_GPUS = "invalid:gpus"
    MODEL_LEN = "invalid:max_model_len"
    INVALID_CONFIG = "invalid:config"
    BLOCK_SIZE = "invalid:block_size"  # no attention kernel takes this KV block size
    UNSUPPORTED_BACKEND = "invalid:backend"
    START_TIMEOUT = "start:timeout"
    LOAD_TIMEOUT = "load:timeout"
    LOAD_ERROR = "load:error"  # alive, but every request failed (HTTP 5xx, malformed stream)
    ENGINE_EXITED = "start:exited"
    COMMUNICATION = "comm:nccl"
    MODEL_MISSING = "setup:model_missing"  # a local checkpoint path absent on the trial's node


@dataclass(frozen=True)
class Crash:
    """A configuration that failed, with the engine's own error text."""

    crash_class: CrashClass
    message: str
    phase: Literal["startup", "load"] = "startup"


@dataclass(frozen=True)
class LaunchSpec:
    """Exactly how to start one engine instance: argv list (no shell), extra env, files, port.

    `files` are (path relative to the trial's working directory, content) pairs to write
    before starting, such as TensorRT-LLM's extra-options YAML or MindIE's config.json.
    """

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    port: int = 8000
    health_path: str = "/health"
    host: str = "127.0.0.1"
    files: tuple[tuple[str, str], ...] = ()
    api_prefix: str = "/v1"

    @property
    def health_url(self) -> str:
        return f"http://{self.host}:{self.port}{self.health_path}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{self.api_prefix}"


@dataclass(frozen=True)
class LoadProbe:
    """One measurement of a load search: the load sent (requests/s or max concurrency;
    ``math.inf`` = unbounded), its metrics, and the names of the SLOs that did not hold."""

    load: float
    metrics: Metrics
    broken: tuple[str, ...] = ()

    @property
    def held(self) -> bool:
        return not self.broken


@dataclass(frozen=True)
class LoadCurve:
    """Every probe of one load search, in the order measured (the unbounded one first)."""

    knob: LoadKnob
    probes: tuple[LoadProbe, ...]

    @property
    def knee(self) -> LoadProbe | None:
        """The highest load at which every SLO held (None when none did)."""
        held = [p for p in self.probes if p.held]
        return max(held, key=lambda p: p.load) if held else None

    @property
    def lowest(self) -> LoadProbe:
        return min(self.probes, key=lambda p: p.load)

    def by_load(self) -> tuple[LoadProbe, ...]:
        return tuple(sorted(self.probes, key=lambda p: p.load))


@dataclass(frozen=True)
class WorkloadRun:
    """One workload of a trial: its metrics (with a load search: at the knee, or at the lowest
    load probed when no load held every SLO) and the search's curve."""

    name: str
    metrics: Metrics
    curve: LoadCurve | None = None

    @property
    def held(self) -> bool:
        """No load search, or one that found a load holding every SLO."""
        return self.curve is None or self.curve.knee is not None


OutcomeStatus = Literal["ok", "crashed", "infra_error"]


@dataclass(frozen=True)
class TrialOutcome:
    """What a runner returns for one trial. Runners never raise for engine faults."""

    status: OutcomeStatus
    metrics: Metrics | None = None
    crash: Crash | None = None
    launch: LaunchSpec | None = None
    wall_s: float = 0.0
    diagnostics: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    artifacts: tuple[tuple[str, str], ...] = ()
    """(name, file path) pairs: engine log, benchmark JSON, ... kept for the study's record."""
    replicas: int = 0
    """Engine instances that served the workload (0: the runner did not get to start one)."""
    gpus_per_replica: int = 0
    """GPUs each of those instances used (TP x PP x DP)."""
    workloads: tuple[WorkloadRun, ...] = ()
    """Each workload measured, the trial's own first then `Workload.also`, when there was a
    load search or more than one workload (empty otherwise); `metrics` is then the first's."""
