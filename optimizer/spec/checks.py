"""Cross-checks of a parsed space file against the catalogue and the engine adapters.

Second half of `load_spec`: pydantic has checked the shape of the file; this module resolves
the model, its checkpoints and the GPU (`optimizer.spec.resolve`) and checks what needs them
and the engine release's own catalogue of settings.
An engine release outside the catalogue takes its nearest catalogued release (an error with
``--strict-versions``); every setting must exist at that release (with the
closest valid name otherwise, or where it moved); values and ranges must be valid engine
values; conditions must refer to settings declared above them and to reachable values; a value
that can never run on its own (TP not dividing the heads; an instance larger than the node
group, or than one node where the engine release cannot span nodes: the node group is too
small) is rejected; user constraints may only name settings and facts; the baseline must be the
engine default where not set, reachable by the space, fit the node group and satisfy every
constraint. Each problem is ``field.path: what is wrong and how to fix it``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from optimizer.constraints import builtin_violations, check_names, violations
from optimizer.errors import SpecError
from optimizer.space import baseline_params, candidate_from_params
from optimizer.spec.models import (
    BoolParam,
    CategoricalParam,
    EngineSection,
    FloatParam,
    IntParam,
    StudySpec,
)
from optimizer.spec.resolve import resolve_space
from optimizer.spec.simulator import check_simulator
from optimizer.spec.workload import WorkloadSection
from runners.catalog import GpuSpec, ModelSpec, Quantization
from runners.engines import (
    EngineAdapter,
    adapter_for,
    engine_names,
    get_engine,
    get_entry,
    instance_nodes,
    release,
)
from runners.errors import DatasetError, EngineError
from runners.types import NodeGroup, SettingValue
from runners.workload import at_rate, make_requests

AnyParam = IntParam | FloatParam | CategoricalParam | BoolParam
SINGLE_VALUE_RULES = ("gpus", "tp_heads")


def cross_check(
    spec: StudySpec, strict_versions: bool = False, base_dir: Path | None = None
) -> list[str]:
    """Every problem found, as ``field.path: message`` strings (empty when the file is good).

    The model, its checkpoints and the GPU are resolved first (`optimizer.spec.resolve`;
    relative config paths from `base_dir`, default the working directory). An engine release
    outside the catalogue takes the nearest catalogued release (with one warning);
    `strict_versions` makes it a problem instead."""
    return (
        _check_engines(spec, strict_versions, base_dir)
        + check_workloads(spec)
        + check_simulator(spec.simulator)
    )


def check_workloads(spec: StudySpec) -> list[str]:
    """Each workload's request list can be had: its file is read (and kept in the workload
    cache for the trials), so a bad file is named with its line before anything is stored."""
    problems: list[str] = []
    searched: list[tuple[str, WorkloadSection]] = (
        [(f"workloads.{index}", section) for index, section in enumerate(spec.workloads)]
        if spec.workloads
        else [("workload", spec.workload)]
    )
    sections = searched + [
        (f"validation.workloads.{index}", section)
        for index, section in enumerate(spec.validation.workloads)
    ]
    goodput = spec.objectives.goodput
    for field, section in sections:
        try:
            workload = spec.workload_for(section)
            make_requests(workload)
            if goodput is not None and goodput.load == "request_rate":
                make_requests(at_rate(workload, 1.0))  # a load search re-times the list
        except DatasetError as exc:
            problems.append(f"{field}: {exc}")
    return problems


def _check_engines(spec: StudySpec, strict_versions: bool, base_dir: Path | None) -> list[str]:
    resolution = resolve_space(spec, base_dir or Path.cwd())
    if resolution.problems:
        return list(resolution.problems)
    model, gpu = resolution.model, resolution.gpu
    assert model is not None and gpu is not None
    problems: list[str] = []
    for engine_name, section in spec.engines.items():
        where = f"engines.{engine_name}"
        try:
            found = release(engine_name, section.version)
            if strict_versions and not found.catalogued:
                adapter_type = get_entry(engine_name).adapter
                problems.append(
                    f"{where}.version: {engine_name} {section.version!r} is not in the "
                    f"catalogue (supported: {adapter_type.supported_text()}); choose a "
                    f"catalogued release, or drop --strict-versions to use {found.used}, the "
                    "nearest catalogued release"
                )
                continue
            adapter = get_engine(engine_name, section.version)
        except EngineError as exc:
            known = engine_name in engine_names()
            problems.append(f"{where}{'.version' if known else ''}: {exc}")
            continue
        problems.extend(_check_section(where, section, adapter, model, gpu, spec.node_group))
    if problems:
        return problems
    return _check_baseline(spec, model, gpu)


def _check_section(
    where: str,
    section: EngineSection,
    adapter: EngineAdapter,
    model: ModelSpec,
    gpu: GpuSpec,
    node_group: NodeGroup,
) -> list[str]:
    problems: list[str] = []
    known = adapter.settings()
    declared: list[str] = []
    for setting in section.settings:
        field = f"{where}.settings.{setting}"
        canonical = adapter.canonical_name(setting)
        if canonical is None:
            problems.append(f"{field}: {adapter.unknown_setting(setting)}")
            continue
        if canonical != setting:
            problems.append(
                f"{field}: write this setting as {canonical!r}, the catalogue spelling of "
                f"{adapter.name} {adapter.version} (one spelling keeps parameter names stable)"
            )
            continue
        alternatives = section.alternatives(setting)
        if len(alternatives) > 1 and any(not alt.when for alt in alternatives):
            problems.append(f"{field}: each of several alternatives needs its own 'when'")
        for index, alt in enumerate(alternatives):
            label = field + (f"[{index}]" if len(alternatives) > 1 else "")
            problems.extend(_check_param(label, alt, known[setting].check, section, declared))
            problems.extend(_check_runnable(label, setting, alt, adapter, model, gpu, node_group))
        declared.append(setting)
    for index, constraint in enumerate(section.constraints):
        if (why := check_names(constraint.rule, adapter)) is not None:
            problems.append(f"{where}.constraints.{index}.require: {why}")
    return problems


def _values(param: AnyParam) -> list[SettingValue]:
    if isinstance(param, IntParam | FloatParam):
        return [param.low, param.high]
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    return []


def _check_param(
    field: str,
    param: AnyParam,
    check_value: Callable[[SettingValue], str | None],
    section: EngineSection,
    declared: list[str],
) -> list[str]:
    """Problems of one declared setting: bounds, engine-valid values, reachable conditions."""
    problems: list[str] = []
    if (why := param.check_bounds()) is not None:
        problems.append(f"{field}: {why}")
    kind = "bound" if isinstance(param, IntParam | FloatParam) else "choice"
    for value in _values(param):
        if (why := check_value(value)) is not None:
            shown = value if kind == "bound" else repr(value)
            problems.append(f"{field}: {kind} {shown}: {why}")
    for other, wanted in param.when.items():
        if other not in declared:
            problems.append(
                f"{field}.when.{other}: conditions may only name settings declared above this "
                f"one in the same engine (declared so far: {', '.join(declared) or 'none'})"
            )
            continue
        values = wanted if isinstance(wanted, list) else [wanted]
        reachable = section.alternatives(other)
        for value in values:
            if not any(alt.contains(value) for alt in reachable):
                problems.append(
                    f"{field}.when.{other}: {value!r} can never be chosen for {other} "
                    f"({'; '.join(alt.describe() for alt in reachable)})"
                )
    return problems


def _check_runnable(
    field: str,
    setting: str,
    param: AnyParam,
    adapter: EngineAdapter,
    model: ModelSpec,
    gpu: GpuSpec,
    node_group: NodeGroup,
) -> list[str]:
    """Values that can never run whatever else is chosen (too many GPUs, TP vs heads)."""
    problems: list[str] = []
    check_value = adapter.settings()[setting].check
    for value in _values(param):
        if check_value(value) is not None:
            continue
        effective = adapter.effective_settings({setting: value}, model, gpu)
        world = adapter.gpus_per_instance(effective, model)
        too_small = node_group_too_small(
            f"{field} = {value!r}", f"remove {value!r} from {field}", world, adapter, node_group
        )
        if too_small is not None:
            problems.append(too_small)
            continue
        unquantized = Quantization("bf16")
        for found in builtin_violations(adapter, effective, model, gpu, node_group, unquantized):
            if found.rule in SINGLE_VALUE_RULES:
                problems.append(
                    f"{field}: {value!r} can never run: {found.message}; remove it from the space"
                )
    return problems


def node_group_too_small(
    what: str, other_fix: str, world: int, adapter: EngineAdapter, node_group: NodeGroup
) -> str | None:
    """Why the node group cannot hold one instance of `world` GPUs (`what` asks for it), with
    the fix, or None when it can: on one node, or over several where the engine release can
    span nodes."""
    per_node, nodes = node_group.gpus_per_node, node_group.nodes
    if world <= per_node:
        return None
    shape = f"{nodes} node{'s' if nodes > 1 else ''} of {per_node} x {node_group.gpu}"
    if not adapter.spans_nodes():
        return (
            f"hardware.node_groups.0.gpus_per_node: {what} needs {world} GPUs in one instance, "
            f"and {adapter.name} {adapter.version} runs an instance on one node ({shape}); "
            f"use nodes of {world} GPUs or more, an engine release that spans nodes, or "
            f"{other_fix}"
        )
    if world <= node_group.total_gpus:
        return None
    needed = instance_nodes(world, per_node)
    return (
        f"hardware.node_groups.0.nodes: the node group ({shape}) is too small for {what}: one "
        f"instance needs {world} GPUs ({needed} nodes of {per_node}); set nodes: {needed} or "
        f"more (with the network between them), or {other_fix}"
    )


def _check_baseline(spec: StudySpec, model: ModelSpec, gpu: GpuSpec) -> list[str]:
    baseline = spec.baseline
    problems: list[str] = []
    if baseline.engine not in spec.engines:
        return [
            f"baseline.engine: {baseline.engine!r} is not among the engines of this space "
            f"({', '.join(spec.engines)})"
        ]
    if baseline.variant not in spec.model.variants:
        problems.append(
            f"baseline.variant: {baseline.variant!r} is not among model.variants "
            f"({', '.join(spec.model.variants)})"
        )
    adapter = get_engine(baseline.engine, spec.engines[baseline.engine].version)
    known = adapter.settings()
    for setting, value in baseline.settings.items():
        if setting not in known:
            problems.append(f"baseline.settings.{setting}: {adapter.unknown_setting(setting)}")
        elif (why := known[setting].check(value)) is not None:
            problems.append(f"baseline.settings.{setting}: {why}")
    if problems:
        return problems
    try:
        params = baseline_params(spec, model, gpu)
    except SpecError as exc:
        return [str(exc)]
    candidate = candidate_from_params(spec, params)
    adapter = adapter_for(candidate)
    effective = adapter.effective_settings(candidate.settings_dict(), model, gpu)
    too_small = node_group_too_small(
        "the baseline",
        "set smaller parallelism under baseline.settings",
        adapter.gpus_per_instance(effective, model),
        adapter,
        spec.node_group,
    )
    if too_small is not None:
        return [too_small]
    for broken in violations(spec, candidate):
        problems.append(
            f"baseline: the engine-defaults configuration breaks rule {broken.rule!r} "
            f"({broken.message}); set the settings it needs under baseline.settings"
        )
    return problems
