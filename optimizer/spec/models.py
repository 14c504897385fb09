"""The space file as typed values: the pydantic models of every section of the YAML.

Place in the data flow: `optimizer.spec.load` validates a file into a `StudySpec` (shape and
types here; the model, an inline GPU and a node group's network in
`optimizer.spec.catalog_sections`; cross-checks against the catalogue and engines in
`optimizer.spec.checks`; the searched parameters' own models in `optimizer.spec.params`); every
later stage reads only these frozen models. The space language
is documented field by field in docs/space-language.md
(tests/optimizer/test_space_language_doc.py keeps the two in step).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from optimizer.errors import ExpressionError
from optimizer.expressions import Node
from optimizer.expressions import parse as parse_expression
from optimizer.paths import MAX_NAME_LENGTH, NAME_PATTERN
from optimizer.spec.catalog_sections import (
    GpuSpecSection,
    ModelSection,
    NetworkSection,
    drop_unset,
)
from optimizer.spec.params import BoolParam as BoolParam
from optimizer.spec.params import CategoricalParam as CategoricalParam
from optimizer.spec.params import FloatParam as FloatParam
from optimizer.spec.params import IntParam as IntParam
from optimizer.spec.params import ParamSpec, Scalar
from optimizer.spec.params import StrictModel as _Strict
from optimizer.spec.presets import (
    GOODPUT_NEEDS_SLOS,
    Combine,
    GoodputSection,
    Preset,
    RecommendationSection,
    WeightedWorkload,
    check_workload_names,
    expand_preset,
    first_workload,
)
from optimizer.spec.simulator import SimulatorSection
from optimizer.spec.workload import WorkloadSection
from runners.catalog import QuantFormat
from runners.types import EngineName, NodeGroup, SloLimit, Workload

RESERVED_RAY_RESOURCES = ("CPU", "GPU", "TPU", "memory", "object_store_memory", "accelerator_type")


def _ray_resource_problem(value: str) -> str | None:
    """Why `value` cannot name a node group's Ray resource (None when it can)."""
    if "_group_" in value:
        return (
            f"{value!r} contains '_group_': Ray reads resource names of the form "
            "<x>_group_<y> as its own placement-group resources, so trials could never be "
            "placed there; rename it, e.g. 'pool_a' or 'h100-a'"
        )
    if value in RESERVED_RAY_RESOURCES or value.startswith(("node:", "accelerator_type:")):
        return f"{value!r} is one of Ray's own resource names; choose e.g. 'pool_a'"
    return None


class NodeGroupSection(_Strict):
    """A set of identical nodes trials are placed on; `ray_resource` (default: the name) is the
    custom Ray resource each of its nodes declares, one unit per GPU (`ray start --resources
    '{"pool_a": 8}'`); `ray_label` (``key=value``) further selects nodes by Ray label;
    `network` the links between its nodes (default: the GPU's typical inter-node figure)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    gpu: str
    gpus_per_node: int = Field(ge=1, le=64)
    nodes: int = Field(default=1, ge=1)
    ray_resource: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    ray_label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]*=\S+$")
    network: NetworkSection | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        return drop_unset(handler(self), ("network",))

    @property
    def inter_node_gb_s(self) -> float | None:
        return None if self.network is None else self.network.gb_s_per_gpu(self.gpus_per_node)

    @model_validator(mode="after")
    def _ray_names(self) -> NodeGroupSection:
        field = "ray_resource" if self.ray_resource is not None else "name"
        problem = _ray_resource_problem(self.resource)
        if problem is not None:
            hint = "" if field == "ray_resource" else " (the name is the default ray_resource)"
            raise ValueError(f"{field}: {problem}{hint}")
        return self

    @property
    def resource(self) -> str:
        return self.ray_resource if self.ray_resource is not None else self.name

    @property
    def label(self) -> tuple[str, str] | None:
        if self.ray_label is None:
            return None
        key, _, value = self.ray_label.partition("=")
        return key, value


class HardwareSection(_Strict):
    """Node groups of one GPU type and node size: interchangeable capacity for the trials.

    `fill_node_group` (default true): a configuration smaller than a node is replicated to fill
    it and measured as one deployment of the whole node; false: a trial uses exactly its own
    TP x PP x DP GPUs, so trials of different sizes can share a node (with the Ray runner).
    `gpu_spec` describes a GPU the catalogue does not have (the node groups name it).
    """

    node_groups: list[NodeGroupSection] = Field(min_length=1)
    fill_node_group: bool = True
    gpu_spec: GpuSpecSection | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        return drop_unset(handler(self), ("gpu_spec",))

    @model_validator(mode="after")
    def _interchangeable(self) -> HardwareSection:
        first = self.node_groups[0]
        names = [g.name for g in self.node_groups]
        resources = [g.resource for g in self.node_groups]
        for index, group in enumerate(self.node_groups):
            if names.count(group.name) > 1:
                raise ValueError(f"node_groups.{index}.name: {group.name!r} is given twice")
            if resources.count(group.resource) > 1:
                raise ValueError(
                    f"node_groups.{index}.ray_resource: {group.resource!r} identifies two node "
                    "groups; give each group its own Ray resource"
                )
            if (group.gpu, group.gpus_per_node) != (first.gpu, first.gpus_per_node):
                raise ValueError(
                    f"node_groups.{index}: {group.gpus_per_node} x {group.gpu} differs from "
                    f"node_groups.0 ({first.gpus_per_node} x {first.gpu}); the node groups of "
                    "one study must be interchangeable (same GPU and GPUs per node). Run one "
                    "study per GPU type"
                )
        return self


class ThroughputObjective(_Strict):
    metric: Literal["output_throughput", "total_token_throughput", "request_throughput"]
    scope: Literal["node_group", "gpu"] = "node_group"

    @property
    def label(self) -> str:
        unit = "req/s" if self.metric == "request_throughput" else "tok/s"
        per = " per GPU" if self.scope == "gpu" else ""
        return f"{self.metric.replace('_', ' ')} ({unit}{per})"


class LatencyObjective(_Strict):
    metric: Literal["ttft", "tpot", "itl", "e2el"]
    percentile: Literal[50, 90, 95, 99]

    @property
    def label(self) -> str:
        return f"p{self.percentile} {self.metric.upper()} (ms)"


SLO_METRICS = (
    *(
        f"{stat}_{m}_ms"
        for m in ("ttft", "tpot", "itl", "e2el")
        for stat in ("mean", "median", "p90", "p95", "p99")
    ),
    "output_throughput_tok_s",
    "total_token_throughput_tok_s",
    "request_throughput_req_s",
    "output_throughput_tok_s_per_gpu",
    "total_token_throughput_tok_s_per_gpu",
    "failed_fraction",
)


class Slo(_Strict):
    """A service-level objective: a bound on one metric (vllm bench serve JSON key)."""

    metric: str
    max: float | None = None
    min: float | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in SLO_METRICS:
            close = difflib.get_close_matches(value, SLO_METRICS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown metric {value!r}{hint} (metrics: mean/median/p90/p95/p99 of "
                "ttft, tpot, itl, e2el as e.g. p99_ttft_ms; throughputs like "
                "output_throughput_tok_s[_per_gpu]; failed_fraction)"
            )
        return value

    @model_validator(mode="after")
    def _one_bound(self) -> Slo:
        if (self.max is None) == (self.min is None):
            raise ValueError(f"SLO on {self.metric}: give exactly one of max or min")
        return self

    @property
    def name(self) -> str:
        return self.limit.name

    @property
    def limit(self) -> SloLimit:
        """The bound as the runners check it."""
        return SloLimit(self.metric, self.max, self.min)


ADDED_OBJECTIVE_FIELDS = ("preset", "goodput", "combine")
"""Fields added after the first studies were stored (see `defaulted_additions`)."""


class ObjectivesSection(_Strict):
    """The two objectives (or a `preset` that fills them in), SLOs, and goodput."""

    preset: Preset | None = None
    throughput: ThroughputObjective
    latency: LatencyObjective
    slos: list[Slo] = Field(
        default_factory=list, description="constraints; the reported front is feasible only"
    )
    goodput: GoodputSection | None = None
    combine: Combine = "weighted"

    _preset = model_validator(mode="before")(expand_preset)

    @model_validator(mode="after")
    def _goodput_has_slos(self) -> ObjectivesSection:
        if self.goodput is not None and not any(slo.max is not None for slo in self.slos):
            raise ValueError(GOODPUT_NEEDS_SLOS)
        return self

    @property
    def throughput_label(self) -> str:
        label = self.throughput.label
        return f"goodput, {label}" if self.goodput is not None else label

    @property
    def latency_label(self) -> str:
        label = self.latency.label
        return f"{label} at goodput" if self.goodput is not None else label

    def defaulted_additions(self) -> set[str]:
        """Fields added after the first studies were stored that hold their defaults: left out
        of a study's identity, so studies made from older space files keep resuming."""
        fields = type(self).model_fields
        return {n for n in ADDED_OBJECTIVE_FIELDS if getattr(self, n) == fields[n].default}


@dataclass(frozen=True)
class UserRule:
    """A constraint declared in a space file, already parsed."""

    name: str
    text: str
    tree: Node
    message: str = ""


class ConstraintSpec(_Strict):
    """A user rule on one engine's effective settings, e.g. ``a * b <= gpus`` (see expressions)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    require: str = Field(description="expression that must be true for a candidate to run")
    message: str = ""

    @field_validator("require")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            parse_expression(value)
        except ExpressionError as exc:
            raise ValueError(f"not a valid expression: {exc}") from None
        return value

    @property
    def rule(self) -> UserRule:
        return UserRule(self.name, self.require, parse_expression(self.require), self.message)


class EngineSection(_Strict):
    version: str = Field(min_length=1)
    settings: dict[str, ParamSpec | list[ParamSpec]] = Field(default_factory=dict)
    constraints: list[ConstraintSpec] = Field(default_factory=list)

    @property
    def rules(self) -> tuple[UserRule, ...]:
        return tuple(c.rule for c in self.constraints)

    def alternatives(
        self, setting: str
    ) -> list[IntParam | FloatParam | CategoricalParam | BoolParam]:
        declared = self.settings[setting]
        return declared if isinstance(declared, list) else [declared]


class BaselineSection(_Strict):
    engine: EngineName
    variant: QuantFormat
    settings: dict[str, Scalar] = Field(default_factory=dict)


SamplerName = Literal["tpe", "nsga2", "gp", "random", "grid"]


class ValidationSection(_Strict):
    """What `python -m optimizer.validate` re-measures after the search (all optional)."""

    repeats: int = Field(default=5, ge=2, le=50, description="runs per re-measured config")
    top: int = Field(default=5, ge=1, le=50, description="Pareto points re-measured")
    concurrency: list[int] = Field(
        default_factory=lambda: [32, 64, 128, 256, 512],
        min_length=1,
        description="client max-concurrency levels of the sweep (baseline and best)",
    )
    workloads: list[WorkloadSection] = Field(
        default_factory=list, description="other workloads to compare baseline and best on"
    )

    @field_validator("concurrency")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(c < 1 for c in value):
            raise ValueError(f"concurrency levels must be >= 1, got {value}")
        return sorted(set(value))


class SearchSection(_Strict):
    n_trials: int = Field(default=50, ge=1)
    sampler: SamplerName = "tpe"
    seed: int = 0


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class RealRunSection(_Strict):
    """How real engines run (``--runner local``, ``--ray-worker local``); the simulator ignores
    it. Command-line flags override each field (`optimizer.config.real_run_settings`)."""

    start_deadline_s: float = Field(
        default=600.0, gt=0, description="seconds from engine start until /health answers 200"
    )
    bench_timeout_s: float = Field(
        default=1800.0, gt=0, description="seconds for the whole benchmark, warm-up included"
    )
    stop_grace_s: float = Field(default=10.0, gt=0, description="SIGTERM to SIGKILL at teardown")
    offline: bool = Field(
        default=False, description="always run the engine with the Hugging Face offline variables"
    )
    env: dict[Annotated[str, Field(pattern=ENV_NAME)], str | int | float] = Field(
        default_factory=dict, description="variables set for every engine"
    )
    pass_env: list[Annotated[str, Field(pattern=ENV_NAME)]] = Field(
        default_factory=list,
        description="variables copied from the driver's environment to every engine",
    )

    @field_validator("env", mode="before")
    @classmethod
    def _no_bool_values(cls, value: object) -> object:
        if isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, bool):
                    raise ValueError(
                        f"{name}: {str(item).lower()} is a YAML boolean; quote the value the "
                        f"engine expects, e.g. '{int(item)}' or '{str(item).lower()}'"
                    )
        return value

    def env_text(self) -> dict[str, str]:
        """`env` with every value as the text the engine's environment holds."""
        return {name: str(value) for name, value in self.env.items()}


class StudySpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)
    description: str = ""
    model: ModelSection
    hardware: HardwareSection
    engines: dict[EngineName, EngineSection] = Field(min_length=1)
    workload: WorkloadSection
    workloads: list[WeightedWorkload] = Field(default_factory=list)
    objectives: ObjectivesSection
    baseline: BaselineSection
    search: SearchSection = SearchSection()
    validation: ValidationSection = ValidationSection()
    real_run: RealRunSection = RealRunSection()
    simulator: SimulatorSection = SimulatorSection()
    recommendation: RecommendationSection = RecommendationSection()

    _first_workload = model_validator(mode="before")(first_workload)

    @model_validator(mode="after")
    def _workload_names(self) -> StudySpec:
        check_workload_names([w.name for w in self.workloads])
        return self

    @property
    def weighted_workloads(self) -> list[tuple[WorkloadSection, float]]:
        """Every workload of the search with its weight (one workload: weight 1)."""
        if not self.workloads:
            return [(self.workload, 1.0)]
        return [(w, w.weight) for w in self.workloads]

    @property
    def node_group(self) -> NodeGroup:
        """The shape every trial is checked against (all node groups share it)."""
        return self.node_groups[0]

    @property
    def node_groups(self) -> tuple[NodeGroup, ...]:
        return tuple(
            NodeGroup(g.name, g.gpu, g.gpus_per_node, g.nodes, g.inter_node_gb_s)
            for g in self.hardware.node_groups
        )

    @property
    def workload_spec(self) -> Workload:
        """The search's workload, as the runners take it."""
        return self.workload_for(self.workload)

    def workload_for(self, section: WorkloadSection) -> Workload:
        """A workload of this space (the search's or a validation one) for the runners: a
        tokenizer "auto" is the baseline checkpoint's when it is on this machine."""
        variant = (
            self.baseline.variant
            if self.baseline.variant in self.model.variants
            else next(iter(self.model.variants))
        )
        return section.workload(self.model.checkpoint(variant))
