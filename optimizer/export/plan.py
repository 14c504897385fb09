"""What a deployment of one trial consists of: its instances, devices, ports and engine files.

Place in the data flow: `optimizer.export.cli` reads the chosen trial (`optimizer.record`) and
calls `plan_deployment`; the writers (`scripts` for the launch script and the load balancer,
`kube` for Kubernetes) only format the `Deployment` it returns. The shape is the one the trial
was measured with (`replicas` instances of `gpus_per_replica` GPUs on one node); instance `i`
gets devices ``i*g .. i*g+g-1`` (through the GPU spec's visibility variable) and, behind the
balancer on `port`, its own ports from ``port + 1`` (as many as the engine holds per instance).
The engine's configuration files come from its registry entry (`runners.engines.deploy`); an
instance runs in the folder holding its files: ``engine/``, or ``engine/replica-<i>/`` when the
files differ per instance (MindIE's config.json holds its port).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from optimizer.errors import ExportError
from optimizer.record import TrialRecord
from optimizer.space import candidate_from_params
from optimizer.spec.models import StudySpec
from runners.catalog import GpuSpec, get_gpu
from runners.engines import LaunchParts, adapter_for, deploy, resolve_candidate
from runners.types import Candidate, NodeGroup

LOOPBACK = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"
ENGINE_DIR = "engine"


@dataclass(frozen=True)
class Instance:
    """One engine instance on the node: its devices, port, launch and working folder."""

    index: int
    devices: tuple[int, ...]
    port: int
    launch: LaunchParts
    workdir: str
    """Folder of its engine files (unused when the launch has none: every setting is a flag
    default or an environment variable)."""

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.launch.health_path}"


@dataclass(frozen=True)
class Deployment:
    """A trial as deployed on one node of its group (and, for Kubernetes, on the whole group).

    `instances` listen on the loopback behind the load balancer on `port`; `pod` is one
    instance as a container runs it (any address, the engine's own port `pod_port`).
    """

    study: str
    record: TrialRecord
    candidate: Candidate
    node_group: NodeGroup
    gpu: GpuSpec
    replicas: int
    gpus_per_replica: int
    port: int
    instances: tuple[Instance, ...]
    pod: LaunchParts
    pod_port: int
    image: str

    @property
    def name(self) -> str:
        """A DNS-1123 name for the Kubernetes objects: ``<study>-trial-<n>``."""
        return k8s_name(f"{self.study}-trial-{self.record.number}")

    @property
    def files(self) -> dict[str, str]:
        """Every engine file, by its path relative to the deployment folder."""
        out: dict[str, str] = {}
        for instance in self.instances:
            for name, text in instance.launch.files:
                out[f"{instance.workdir}/{name}"] = text
        return out


def plan_deployment(
    study: str, spec: StudySpec, record: TrialRecord, port: int, image: str | None = None
) -> Deployment:
    """The deployment of `record` (a completed trial of `spec`), balanced on `port`."""
    candidate = candidate_from_params(spec, record.params)
    group = spec.node_group
    resolved = resolve_candidate(candidate, group)
    if resolved.problem is not None:
        raise ExportError(
            f"trial {record.number}: {candidate.engine} refuses this configuration "
            f"({resolved.problem.message}); nothing to deploy"
        )
    shape = record.shape
    replicas = shape.replicas if shape is not None else resolved.replicas
    gpus = shape.gpus_per_replica if shape is not None else resolved.instance_gpus
    if replicas * gpus > group.gpus_per_node:
        raise ExportError(
            f"trial {record.number} ran {replicas} x {gpus} GPUs, more than the "
            f"{group.gpus_per_node} of a node of {group.name}"
        )
    adapter = adapter_for(candidate)
    stride = adapter.ports_per_instance
    if not 0 < port <= 65535 - stride * replicas:
        raise ExportError(
            f"--port {port}: give a port from 1 to {65535 - stride * replicas} (the "
            f"{replicas} instance(s) listen on the ports after it)"
        )
    launches = [deploy(candidate, group, LOOPBACK, port + 1 + i * stride) for i in range(replicas)]
    shared = all(launch.files == launches[0].files for launch in launches)
    instances = tuple(
        Instance(
            index=i,
            devices=tuple(range(i * gpus, (i + 1) * gpus)),
            port=port + 1 + i * stride,
            launch=launch,
            workdir=ENGINE_DIR if shared else f"{ENGINE_DIR}/replica-{i}",
        )
        for i, launch in enumerate(launches)
    )
    pod_port = adapter.default_port
    return Deployment(
        study=study,
        record=record,
        candidate=candidate,
        node_group=group,
        gpu=get_gpu(group.gpu),
        replicas=replicas,
        gpus_per_replica=gpus,
        port=port,
        instances=instances,
        pod=deploy(candidate, group, ANY_ADDRESS, pod_port),
        pod_port=pod_port,
        image=image or adapter.container_image(),
    )


def k8s_name(text: str) -> str:
    """`text` as a DNS-1123 label: lower case, ``-`` for anything else, at most 63 long."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].rstrip("-") or "deployment"
