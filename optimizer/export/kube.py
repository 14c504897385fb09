"""Kubernetes manifests of a deployment: the engine files, a Deployment and a Service.

Place in the data flow: `optimizer.export.cli` formats a `Deployment` (`optimizer.export.plan`)
into ``kubernetes.yaml``. One pod is one engine instance: it requests the trial's GPUs per
instance under the resource name its device plugin advertises (the GPU spec's
`kubernetes_resource`, e.g. ``nvidia.com/gpu``; the plugin, not the pod, picks the devices), runs
the engine's own command with its configuration files mounted from the ConfigMap at
``/config``, and is ready when the engine's health check answers. The Deployment runs as many
pods as the whole node group held instances; the Service balances over them. The manifests are
checked against the Kubernetes schema offline in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from optimizer.errors import ExportError
from optimizer.export.node import START_TIMEOUT_S, describe
from optimizer.export.plan import Deployment

CONFIG_DIR = "/config"
PROBE_PERIOD_S = 10


def manifests(dep: Deployment) -> list[dict[str, object]]:
    """The manifests, in the order `kubectl apply -f` should create them."""
    if not dep.image:
        raise ExportError(
            f"{dep.candidate.engine} has no public container image to put in the manifests; "
            "pass --image with the image that holds the engine"
        )
    labels = {"app.kubernetes.io/name": dep.name, "app.kubernetes.io/managed-by": "optimizer"}
    metadata = {
        "name": dep.name,
        "labels": labels,
        "annotations": {
            "serving-optimizer/study": dep.study,
            "serving-optimizer/trial": str(dep.record.number),
            "serving-optimizer/serve-command": dep.record.serve_command,
        },
    }
    docs: list[dict[str, object]] = []
    files = dict(dep.pod.files)
    if files:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{dep.name}-config", "labels": labels},
                "data": files,
            }
        )
    docs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": dep.replicas * dep.node_group.nodes,
                "selector": {"matchLabels": {"app.kubernetes.io/name": dep.name}},
                "template": {"metadata": {"labels": labels}, "spec": _pod(dep, bool(files))},
            },
        }
    )
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": dep.name, "labels": labels},
            "spec": {
                "selector": {"app.kubernetes.io/name": dep.name},
                "ports": [{"name": "http", "port": dep.port, "targetPort": "http"}],
            },
        }
    )
    return docs


def _pod(dep: Deployment, with_config: bool) -> dict[str, object]:
    names = {name for name, _ in dep.pod.files}
    probe = {"httpGet": {"path": dep.pod.health_path, "port": "http"}}
    container: dict[str, object] = {
        "name": "engine",
        "image": dep.image,
        "command": _mounted(dep.pod.argv, names),
        "ports": [{"name": "http", "containerPort": dep.pod_port}],
        "startupProbe": {
            **probe,
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": START_TIMEOUT_S // PROBE_PERIOD_S,
        },
        "readinessProbe": {**probe, "periodSeconds": PROBE_PERIOD_S},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    env = [{"name": k, "value": _mounted([v], names)[0]} for k, v in dep.pod.env]
    if env:
        container["env"] = env
    resource = dep.gpu.kubernetes_resource
    if resource:
        gpus = {resource: dep.gpus_per_replica}
        container["resources"] = {"limits": gpus, "requests": gpus}
    volumes: list[dict[str, object]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    if with_config:
        mounts = container["volumeMounts"]
        assert isinstance(mounts, list)
        mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
        volumes.append({"name": "config", "configMap": {"name": f"{dep.name}-config"}})
    return {"containers": [container], "volumes": volumes}


def _mounted(values: Sequence[str], file_names: set[str]) -> list[str]:
    """`values` with each engine file name replaced by its path in the mounted ConfigMap."""
    return [f"{CONFIG_DIR}/{v}" if v in file_names else v for v in values]


class _Dumper(yaml.SafeDumper):
    """Block YAML without anchors; multi-line strings (the engine files) as literal blocks."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def manifests_yaml(dep: Deployment) -> str:
    header = (
        f"# {describe(dep)}.\n"
        "# Written by python -m optimizer.export: kubectl apply -f this file.\n"
    )
    body = yaml.dump_all(manifests(dep), Dumper=_Dumper, sort_keys=False, default_flow_style=False)
    return header + body
