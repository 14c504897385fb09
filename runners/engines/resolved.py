"""A candidate resolved once against its node group, and carried forward from there.

Place in the data flow: right after the search proposes a `Candidate`, `resolve_candidate`
applies the engine's defaults on the node group's GPU, runs the engine's own argument checks,
applies the checkpoint's quantization and the instance's place on the nodes (how many it
spans), and computes everything later stages ask about the same candidate: the effective
settings, the settings that differ from the defaults (for display), the instance shape, the
copy-paste serve command (one per node for an instance spanning nodes) and the engine-neutral
`ServingConfig` the simulator consumes. Pre-flight, the trial record, progress lines, pools and
runners all read this one value instead of resolving the candidate again. Results are cached
per (candidate, node group): both are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from runners.catalog import checkpoint_quantization, get_gpu, get_model
from runners.engines.launches import minimal_settings, multi_node_serve_command, serve_command
from runners.engines.parallel import Parallelism
from runners.engines.quantized import with_quantization
from runners.engines.registry import adapter_for
from runners.engines.topology import instance_nodes, with_topology
from runners.types import Candidate, Crash, NodeGroup, ServingConfig, SettingValue


@dataclass(frozen=True)
class Resolved:
    """What the engine makes of `candidate` on `node_group`.

    `effective` holds every setting's value when the engine starts (defaults applied);
    `minimal` the explicit settings that are not what the engine would pick anyway.
    `instance_gpus` is TP x PP x DP of one engine instance; `replicas` how many instances fill
    one node when the study fills node groups. `problem` is the first failure of the engine's
    own argument checks (the engine would refuse to start), and then `config` is None.
    `split` is how one instance is split over GPUs (TP, PP, DP, MoE and dense shards).
    """

    candidate: Candidate
    node_group: NodeGroup
    effective: tuple[tuple[str, SettingValue], ...]
    minimal: tuple[tuple[str, SettingValue], ...]
    instance_gpus: int
    replicas: int
    serve_command: str
    config: ServingConfig | None
    problem: Crash | None
    split: Parallelism

    @property
    def ok(self) -> bool:
        return self.problem is None

    def effective_dict(self) -> dict[str, SettingValue]:
        return dict(self.effective)

    def minimal_dict(self) -> dict[str, SettingValue]:
        return dict(self.minimal)


@lru_cache(maxsize=4096)
def resolve_candidate(candidate: Candidate, node_group: NodeGroup) -> Resolved:
    """Resolve `candidate` on `node_group` (cached: both are frozen values)."""
    adapter = adapter_for(candidate)
    model = get_model(candidate.model)
    gpu = get_gpu(node_group.gpu)
    explicit = adapter.normalize(candidate.settings_dict())
    effective = adapter.effective_settings(explicit, model, gpu)
    minimal = minimal_settings(adapter, explicit, model, gpu)
    problem = adapter.validate(effective, model, node_group)
    config = None
    if problem is None:
        quantization = checkpoint_quantization(candidate.checkpoint, candidate.weight_dtype, model)
        config = with_topology(
            with_quantization(
                adapter.to_serving_config(quantization.storage, effective, model, gpu, node_group),
                quantization,
            ),
            node_group,
        )
    split = adapter.parallelism(effective, model)
    nodes = instance_nodes(split.gpus, node_group.gpus_per_node)
    if problem is None and 1 < nodes <= node_group.nodes and adapter.spans_nodes():
        command = multi_node_serve_command(
            adapter, candidate, model, gpu, nodes, -(-split.gpus // nodes)
        )
    else:
        command = serve_command(adapter, candidate, model, gpu)
    return Resolved(
        candidate=candidate,
        node_group=node_group,
        effective=tuple(effective.items()),
        minimal=tuple(minimal.items()),
        instance_gpus=split.gpus,
        replicas=adapter.replicas(effective, model, node_group),
        serve_command=command,
        config=config,
        problem=problem,
        split=split,
    )
