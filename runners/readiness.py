"""Real-engine readiness of one node: can real trials run here at all?

Place in the data flow: before the first trial of a real runner, the driver
(`optimizer.readiness`) builds one `ReadinessRequest` from the space file: the program of every
engine searched (`runners.launch.Launcher.program`), every checkpoint (local paths already
absolute), the declared device and how many a node must have, and the host engines bind. It
runs `check_node` in its own process (``--runner local``) or on every Ray node of the node
groups (`runners.ray.readiness`), where the answer is about that node's own Python and files.

`check_node` never raises for what it finds; it returns a `NodeReport` listing each problem
with its fix:

- the engine: a Python module must be installed for this Python and import cleanly (a
  subprocess runs ``import <module>``, so a broken install shows its own error); a program must
  be on PATH (or executable at its absolute path);
- the model: a local checkpoint folder must exist and hold weights and a tokenizer; a Hugging
  Face repo id must have such a snapshot in this node's cache (trials never download weights:
  a download would run into the start deadline of every trial);
- the devices: the node must have the declared device, as many as a node of the group has.
  Devices are named as the catalogue knows them: this node's CPU socket is always there (as
  ``cpu``), NVIDIA GPUs are listed by ``nvidia-smi`` (else by PyTorch, where installed, in a
  fresh interpreter that sees all of the node's devices). A
  device whose name the catalogue does not know counts for the declared one; a device the
  catalogue knows as another model does not;
- the trial host: a port of the trial range can be bound on it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from runners.catalog import GpuSpec, get_gpu
from runners.checkpoint import hf_cache_dir, is_local_path
from runners.errors import CatalogError, ProcessError
from runners.process import PortLease

IMPORT_TIMEOUT_S = 300.0
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")
CPU_DEVICE = "cpu"
"""How a node names its own CPU socket; the catalogue knows the CPU device by this alias."""


@dataclass(frozen=True)
class EngineProgram:
    """What must be present on a node to start an engine: a Python module this node's Python
    imports (`module`, for ``python -m`` launches), or a program (`executable`)."""

    engine: str
    module: str = ""
    executable: str = ""

    def __post_init__(self) -> None:
        if bool(self.module) == bool(self.executable):
            raise ValueError("an EngineProgram names exactly one of module and executable")


@dataclass(frozen=True)
class ReadinessRequest:
    """Everything one node must offer before the first real trial."""

    programs: tuple[EngineProgram, ...]
    checkpoints: tuple[str, ...]
    gpu: str
    gpus_per_node: int
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class NodeReport:
    """What one node lacks (`problems`, each with its fix); `python` is its interpreter."""

    node: str
    python: str
    problems: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.problems


def check_node(request: ReadinessRequest, node: str | None = None) -> NodeReport:
    """Check this node for `request`; `node` names it in the report (default: host name)."""
    problems: list[str] = []
    for program in dict.fromkeys(request.programs):
        problems.extend(_program_problems(program))
    for checkpoint in dict.fromkeys(request.checkpoints):
        problem = checkpoint_problem(checkpoint)
        if problem:
            problems.append(problem)
    problem = device_problem(request.gpu, request.gpus_per_node)
    if problem:
        problems.append(problem)
    problem = _port_problem(request.host)
    if problem:
        problems.append(problem)
    return NodeReport(node or socket.gethostname(), sys.executable, tuple(problems))


# --- the engine ------------------------------------------------------------------------------


def _program_problems(program: EngineProgram) -> list[str]:
    if program.executable:
        return [] if _executable_found(program.executable) else [_no_executable(program)]
    top = program.module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        return [
            f"engine {program.engine}: Python module {top!r} is not installed in this Python "
            "environment; install the engine into it (or start the study and Ray with a Python "
            "that has it)"
        ]
    error = _import_error(program.module)
    if error:
        return [
            f"engine {program.engine}: `import {program.module}` fails in this Python "
            f"environment: {error}; repair the engine's install"
        ]
    return []


def _executable_found(name: str) -> bool:
    if os.path.isabs(name):
        return os.access(name, os.X_OK) and Path(name).is_file()
    return shutil.which(name) is not None


def _no_executable(program: EngineProgram) -> str:
    where = (
        "does not exist or is not executable"
        if os.path.isabs(program.executable)
        else ("is not on PATH")
    )
    return (
        f"engine {program.engine}: program {program.executable!r} {where}; install the engine "
        "on this node (and put its program on the PATH Ray and the study start with)"
    )


def _import_error(module: str) -> str:
    """The last line of what ``import module`` prints when it fails in a fresh interpreter."""
    done = _python(f"import {module}")
    if done is None:
        return f"still importing after {IMPORT_TIMEOUT_S:g} s"
    if done.returncode == 0:
        return ""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return lines[-1][:500] if lines else f"exit code {done.returncode}"


def _python(
    code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str] | None:
    """Run `code` in a fresh interpreter of this node's Python (None: it did not finish)."""
    try:
        return subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT_S,
            check=False,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None


# --- the model -------------------------------------------------------------------------------


def checkpoint_problem(checkpoint: str, cache: Path | None = None) -> str:
    """Why `checkpoint` cannot be loaded from this node's disk ("" when it can)."""
    if is_local_path(checkpoint):
        path = Path(checkpoint).expanduser()
        if not path.exists():
            return (
                f"model {checkpoint}: the path does not exist; put the weights at this absolute "
                "path on every node that runs trials"
            )
        missing = _missing_files(path)
        return f"model {checkpoint}: the folder has no {missing}" if missing else ""
    hub = cache or hf_cache_dir()
    snapshots = hub / f"models--{checkpoint.replace('/', '--')}" / "snapshots"
    candidates = sorted(p for p in snapshots.glob("*") if p.is_dir())
    if not candidates:
        return (
            f"model {checkpoint}: not in this node's Hugging Face cache ({hub}); download it on "
            f"every node first (`huggingface-cli download {checkpoint}`), or give a local path"
        )
    if all(_missing_files(snapshot) for snapshot in candidates):
        return (
            f"model {checkpoint}: the cached snapshot in {hub} has no "
            f"{_missing_files(candidates[-1])}; download the whole repository "
            f"(`huggingface-cli download {checkpoint}`)"
        )
    return ""


def _missing_files(path: Path) -> str:
    """What a checkpoint at `path` lacks: "weights", "tokenizer", both, or ""."""
    if path.is_file():
        return "" if path.suffix in WEIGHT_SUFFIXES else "weights"
    names = {p.name for p in path.iterdir()}
    missing = []
    if not any(name.endswith(WEIGHT_SUFFIXES) for name in names):
        missing.append(f"weights ({', '.join('*' + s for s in WEIGHT_SUFFIXES)})")
    if not names.intersection(TOKENIZER_FILES):
        missing.append(f"tokenizer ({', '.join(TOKENIZER_FILES)})")
    return " and no ".join(missing)


# --- the devices -----------------------------------------------------------------------------

DeviceProbe = Callable[[], Sequence[str]]


def device_problem(gpu: str, count: int, probes: Sequence[DeviceProbe] | None = None) -> str:
    """Why this node does not have `count` devices of model `gpu` ("" when it has them).

    `probes` list device names, cheapest first (default: the CPU socket, ``nvidia-smi``, then
    PyTorch); the first probes that find enough end the search.
    """
    declared = get_gpu(gpu)
    found: list[str] = []
    for probe in probes if probes is not None else (_cpu, _nvidia_smi, _torch_devices):
        found.extend(probe())
        if sum(_counts_as(name, declared) for name in found) >= count:
            return ""
    have = sum(_counts_as(name, declared) for name in found)
    seen = ", ".join(f"{n} x {name}" for name, n in Counter(found).items()) or "none"
    return (
        f"devices: {count} x {declared.name} declared per node, {have} found (devices seen: "
        f"{seen}); run on nodes that have them, or declare the node's devices in "
        "hardware.node_groups"
    )


def _counts_as(name: str, declared: GpuSpec) -> bool:
    try:
        return get_gpu(name) == declared
    except CatalogError:
        return True  # an accelerator the catalogue does not know by this name


def _cpu() -> list[str]:
    return [CPU_DEVICE]


def _nvidia_smi() -> list[str]:
    program = shutil.which("nvidia-smi")
    if program is None:
        return []
    try:
        done = subprocess.run(
            [program, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return []
    if done.returncode != 0:
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


TORCH_DEVICES = (
    "import json, torch\n"
    "cuda = torch.cuda\n"
    "names = [cuda.get_device_name(i) for i in range(cuda.device_count())] "
    "if cuda.is_available() else []\n"
    "print(json.dumps(names))"
)
VISIBLE_DEVICES_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "ASCEND_RT_VISIBLE_DEVICES",
)


def _torch_devices() -> list[str]:
    """PyTorch's devices, asked in a fresh interpreter that sees every device of the node (a
    Ray task that holds no GPU has CUDA_VISIBLE_DEVICES set to none)."""
    if importlib.util.find_spec("torch") is None:
        return []
    env = {k: v for k, v in os.environ.items() if k not in VISIBLE_DEVICES_ENV}
    done = _python(TORCH_DEVICES, env)
    if done is None:
        return []
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return []
    names = json.loads(lines[-1])
    return [str(name) for name in names] if isinstance(names, list) else []


# --- the trial host --------------------------------------------------------------------------


def _port_problem(host: str) -> str:
    try:
        PortLease(host).release()
    except (ProcessError, OSError) as exc:
        return f"ports: cannot bind a port for the engine on {host}: {exc}"
    return ""
