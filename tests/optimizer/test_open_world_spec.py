"""Space files for what users run: a model given by its config.json, checkpoint formats from
their own files, an inline GPU, an uncatalogued engine release; and the bad inputs of each,
one clear error naming file, field and fix, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from optimizer import study
from optimizer.errors import SpecError
from optimizer.spec.load import load_spec
from runners.catalog import checkpoint_quantization, get_gpu, get_model
from runners.catalog.resolve import MODELS_DIR_ENV
from runners.engines import registry

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"
MIXTRAL_FILE = "mistralai--Mixtral-8x7B-Instruct-v0.1.json"


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)


def space(model: dict[str, Any], gpu: str, gpus: int, **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "name": "open-world",
        "model": model,
        "hardware": {"node_groups": [{"name": "g", "gpu": gpu, "gpus_per_node": gpus}]},
        "workload": {
            "name": "short",
            "dataset": "random",
            "num_prompts": 40,
            "input_len": 256,
            "output_len": 32,
        },
        "objectives": {
            "throughput": {"metric": "output_throughput"},
            "latency": {"metric": "tpot", "percentile": 99},
        },
        "baseline": {"engine": "vllm", "variant": "bf16", "settings": {}},
        "engines": {
            "vllm": {
                "version": "0.33.0",
                "settings": {"max-num-seqs": {"type": "int", "low": 8, "high": 1024, "log": True}},
            }
        },
        "search": {"n_trials": 3, "seed": 1},
    }
    content.update(extra)
    return content


def write(tmp_path: Path, content: dict[str, Any], name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def copy(name: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(MODELS / name, target)
    return target


def run(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    fixed = () if "--n-trials" in extra else ("--n-trials", "3")  # the file's n_trials
    code = study.main(["--space", str(path), "--quiet", *fixed, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_model_given_only_as_a_config_path_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy(MIXTRAL_FILE, tmp_path / "models" / "mixtral.json")
    model = {
        "name": "my-mixtral",
        "config": "models/mixtral.json",  # relative to the space file
        "variants": {"bf16": "mistralai/Mixtral-8x7B-Instruct-v0.1"},
    }
    content = space(model, "L40S", 4)
    content["baseline"]["settings"] = {"tensor-parallel-size": 4}
    content["engines"]["vllm"]["settings"]["tensor-parallel-size"] = {
        "type": "categorical",
        "choices": [2, 4],
    }
    code, out, err = run(write(tmp_path, content), capsys)
    assert code == 0, err
    assert get_model("my-mixtral").num_experts == 8
    loaded = optuna.load_study(
        study_name="open-world", storage=f"sqlite:///{tmp_path / 'studies' / 'open-world.db'}"
    )
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in loaded.trials)
    assert "vllm serve mistralai/Mixtral-8x7B-Instruct-v0.1" in out


def test_an_inline_gpu_and_an_awq_checkpoint_with_carried_over_efficiencies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = {
        "name": "Qwen3-8B",
        "variants": {"bf16": "Qwen/Qwen3-8B", "awq": "Qwen/Qwen3-8B-AWQ"},
    }
    content = space(model, "RTX-A6000", 1)
    content["hardware"]["gpu_spec"] = {
        "name": "RTX-A6000",
        "architecture": "ampere",
        "compute_capability": "8.6",
        "memory_gib": 48,
        "hbm_tb_s": 0.768,
        "bf16_tflops": 154.8,
        "int8_tops": 309.7,
        "interconnect": "pcie",
        "link_gb_s": 32,
    }
    content["baseline"]["settings"] = {"max-model-len": 16384}
    content["engines"]["vllm"]["settings"]["max-model-len"] = {
        "type": "categorical",
        "choices": [16384],
    }
    code, _, err = run(write(tmp_path, content), capsys, "--n-trials", "6")
    assert code == 0, err
    gpu = get_gpu("RTX-A6000")
    assert gpu.compute_capability == (8, 6) and not gpu.fp8_compute
    awq = checkpoint_quantization("Qwen/Qwen3-8B-AWQ", "awq", get_model("Qwen3-8B"))
    assert awq.format == "awq"
    report = (tmp_path / "studies" / "open-world" / "report.md").read_text()
    assert "RTX-A6000 was never measured" in report and "A100-SXM-80GB" in report
    loaded = optuna.load_study(
        study_name="open-world", storage=f"sqlite:///{tmp_path / 'studies' / 'open-world.db'}"
    )
    variants = {t.params.get("model_variant") for t in loaded.trials}
    assert variants == {"bf16", "awq"}


def test_an_uncatalogued_engine_release_runs_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.get_engine.cache_clear()
    registry._NOTICED.clear()
    content = space({"name": "Qwen3-8B", "variants": {"bf16": "Qwen/Qwen3-8B"}}, "H100", 1)
    content["engines"]["vllm"]["version"] = "0.12.0"
    content["engines"]["vllm"]["settings"] = {}
    code, _, err = run(write(tmp_path, content), capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: vllm")]
    assert warnings == [
        "warning: vllm 0.12.0 is not in the catalogue; the flags, defaults and checks of "
        "vllm 0.11.0, the nearest catalogued release, apply (--strict-versions refuses "
        "uncatalogued releases)"
    ]


def test_a_variant_key_must_match_the_checkpoints_own_config(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    copy("Qwen--Qwen3-32B-FP8.json", folder / "config.json")
    model = {
        "name": "Qwen3-32B",
        "variants": {"awq": {"checkpoint": "Qwen/Qwen3-32B-FP8", "config": str(folder)}},
    }
    content = space(model, "H100", 8)
    content["baseline"]["variant"] = "awq"
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, content))
    message = str(caught.value)
    assert "model.variants.awq: checkpoint 'Qwen/Qwen3-32B-FP8' is fp8" in message
    assert "list it under model.variants.fp8" in message


def _bad_config(tmp_path: Path, edit: dict[str, Any], drop: str = "") -> Path:
    raw = json.loads((MODELS / "Qwen--Qwen3-8B.json").read_text())
    raw.update(edit)
    raw.pop(drop, None)
    path = tmp_path / "bad-config.json"
    path.write_text(json.dumps(raw))
    return path


BAD = [
    (
        "config-missing-field",
        lambda tmp: (
            {"name": "x", "config": str(_bad_config(tmp, {}, drop="num_hidden_layers"))},
            None,
        ),
        ("model.config:", "bad-config.json: num_hidden_layers: missing", "copy the model's"),
    ),
    (
        "unknown-architecture",
        lambda tmp: (
            {"name": "x", "config": str(_bad_config(tmp, {"model_type": "mamba2"}))},
            None,
        ),
        ("model.config:", "model_type: 'mamba2' is not an architecture", "known:"),
    ),
    (
        "unknown-quantization",
        lambda tmp: (
            {
                "name": "x",
                "config": str(
                    _bad_config(tmp, {"quantization_config": {"quant_method": "bitsandbytes"}})
                ),
            },
            None,
        ),
        ("quantization_config.quant_method: 'bitsandbytes'", "use a checkpoint quantized"),
    ),
    (
        "gpu-spec-zero-bandwidth",
        lambda tmp: (None, {"hbm_tb_s": 0}),
        ("hardware.gpu_spec", "hbm_tb_s: must be above 0 (TB/s)", "leave a figure out"),
    ),
    (
        "gpu-spec-negative-link",
        lambda tmp: (None, {"link_gb_s": -32}),
        ("hardware.gpu_spec", "link_gb_s: must be above 0", "leave a figure out"),
    ),
    (
        "gpu-spec-catalogue-name",
        lambda tmp: (None, {"name": "H100"}),
        ("hardware.gpu_spec.name: 'H100' is a catalogue GPU", "another name"),
    ),
    (
        "gpu-spec-fp8-on-ampere",
        lambda tmp: (None, {"fp8_tflops": 300}),
        ("hardware.gpu_spec.fp8_tflops: ampere tensor cores do not compute in FP8",),
    ),
    (
        "unknown-model-nowhere",
        lambda tmp: ({"name": "meta-llama/Llama-3.3-70B-Instruct"}, None),
        ("model.name: unknown model", "model.config", "Hugging Face cache"),
    ),
    (
        "network-zero",
        lambda tmp: (None, None),
        ("hardware.node_groups.0.network.gbit_s", "must be above 0"),
    ),
]


@pytest.mark.parametrize(("case", "make", "expected"), BAD, ids=[c[0] for c in BAD])
def test_bad_inputs_are_one_clear_error_exit_2_nothing_written(
    case: str,
    make: Any,
    expected: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_edit, gpu_edit = make(tmp_path)
    model = {"name": "Qwen3-8B", "variants": {"bf16": "Qwen/Qwen3-8B"}}
    if model_edit is not None:
        model = {**model_edit, "variants": {"bf16": "Qwen/Qwen3-8B"}}
    content = space(model, "H100", 1)
    if gpu_edit is not None:
        inline = {
            "name": "MyGPU",
            "architecture": "ampere",
            "memory_gib": 48,
            "hbm_tb_s": 0.768,
            "bf16_tflops": 154.8,
            "interconnect": "pcie",
            "link_gb_s": 32,
        }
        inline.update(gpu_edit)
        content["hardware"]["gpu_spec"] = inline
        content["hardware"]["node_groups"][0]["gpu"] = inline["name"]
    if case == "network-zero":
        content["hardware"]["node_groups"][0]["network"] = {"nics": 8, "gbit_s": 0}
    path = write(tmp_path, content)
    code, _, err = run(path, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    message = err.strip()
    assert message.startswith(f"error: {path}"), message
    assert "\n" not in message, "one paragraph"
    for part in expected:
        assert part in message, message
    assert not (tmp_path / "studies").exists(), "nothing is written"


def test_unset_new_fields_leave_the_study_identity_of_older_studies_alone() -> None:
    spec = load_spec("qwen3-moe.yaml")
    dumped = spec.model_dump(mode="json")
    assert "config" not in dumped["model"]
    assert "gpu_spec" not in dumped["hardware"]
    assert all("network" not in group for group in dumped["hardware"]["node_groups"])
