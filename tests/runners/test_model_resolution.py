"""One resolver: catalogue, config path, models folder, local Hugging Face cache; never the
network. Models read from a config are registered and seen by child processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runners.catalog import (
    checkpoint_quantization,
    get_model,
    resolve_checkpoint,
    resolve_variant,
)
from runners.catalog.resolve import MODELS_DIR_ENV
from runners.errors import CatalogError

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
MIXTRAL_FILE = "mistralai--Mixtral-8x7B-Instruct-v0.1.json"


@pytest.fixture(autouse=True)
def no_local_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty Hugging Face cache and no models folder unless a test makes one."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)


def copy_config(name: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(MODELS / name, target)
    return target


def test_the_catalogue_comes_first_and_its_names_are_aliases() -> None:
    found = resolve_checkpoint("Qwen/Qwen3-235B-A22B-Instruct-2507")
    assert found.model.name == "Qwen3-235B-A22B-Instruct-2507"
    assert found.quantization is None and "catalogue" in found.source
    assert resolve_checkpoint("qwen3-32b").model.name == "Qwen3-32B"


def test_a_config_path_file_or_hf_layout_folder(tmp_path: Path) -> None:
    path = copy_config("mistralai--Mixtral-8x7B-Instruct-v0.1.json", tmp_path / "m.json")
    found = resolve_checkpoint(MIXTRAL, config=path)
    assert found.model.num_experts == 8 and str(path) in found.source
    folder = tmp_path / "llama-fp8"
    copy_config("nvidia--Llama-3.1-70B-Instruct-FP8.json", folder / "config.json")
    copy_config(
        "nvidia--Llama-3.1-70B-Instruct-FP8.hf_quant_config.json",
        folder / "hf_quant_config.json",
    )
    # not a catalogue name: the folder's config is the model, its companion the quantization
    fp8 = resolve_checkpoint("nvidia/Llama-3.1-70B-Instruct-FP8", config=folder)
    assert fp8.model.name == "Llama-3.1-70B-Instruct-FP8"
    assert fp8.model.layers == get_model("Llama-3.1-70B").layers
    assert fp8.quantization is not None and fp8.quantization.kv_cache_fp8


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_a_models_folder_from_the_environment(
    layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "models"
    target = (
        folder / "mistralai--Mixtral-8x7B-Instruct-v0.1.json"
        if layout == "flat"
        else folder / "mistralai" / "Mixtral-8x7B-Instruct-v0.1" / "config.json"
    )
    copy_config("mistralai--Mixtral-8x7B-Instruct-v0.1.json", target)
    monkeypatch.setenv(MODELS_DIR_ENV, str(folder))
    found = resolve_checkpoint(MIXTRAL)
    assert found.model.name == "Mixtral-8x7B-Instruct-v0.1"
    assert get_model(MIXTRAL) is found.model  # registered under its checkpoint id
    assert get_model("Mixtral-8x7B-Instruct-v0.1") is found.model


def test_the_local_hugging_face_cache_at_its_main_revision(tmp_path: Path) -> None:
    repo = tmp_path / "hf-home" / "hub" / "models--mistralai--Mixtral-8x7B-Instruct-v0.1"
    copy_config(
        "mistralai--Mixtral-8x7B-Instruct-v0.1.json", repo / "snapshots" / "abc" / "config.json"
    )
    stale = json.loads((MODELS / "Qwen--Qwen3-8B.json").read_text())
    (repo / "snapshots" / "old").mkdir(parents=True)
    (repo / "snapshots" / "old" / "config.json").write_text(json.dumps(stale))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc\n")
    found = resolve_checkpoint(MIXTRAL)
    assert found.model.num_experts == 8 and "Hugging Face cache" in found.source


def test_a_suffix_resolves_to_the_base_model_plus_a_variant(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    copy_config(
        "mistralai--Mixtral-8x7B-Instruct-v0.1.json",
        folder / "mistralai--Mixtral-8x7B-Instruct-v0.1.json",
    )
    found = resolve_checkpoint(f"{MIXTRAL}-AWQ", models_dir=folder)
    assert found.model.name == "Mixtral-8x7B-Instruct-v0.1"
    assert found.quantization is not None and found.quantization.format == "awq"
    catalogued = resolve_checkpoint("nvidia/Llama-3.1-70B-Instruct-FP8")
    assert catalogued.model.name == "Llama-3.1-70B"  # org-less match of the base name
    assert catalogued.quantization is not None and catalogued.quantization.format == "fp8"
    w8a8 = resolve_checkpoint("Qwen/Qwen3-32B-W8A8")
    assert w8a8.model.name == "Qwen3-32B" and w8a8.quantization is not None
    assert checkpoint_quantization("Qwen/Qwen3-32B-W8A8", "bf16", w8a8.model).format == "int8"


def test_an_unknown_model_says_where_it_looked_and_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as caught:
        resolve_checkpoint("meta-llama/Llama-3.3-70B-Instruct")
    message = str(caught.value)
    assert "unknown model 'meta-llama/Llama-3.3-70B-Instruct'" in message
    assert "Hugging Face cache" in message and "model.config" in message
    assert MODELS_DIR_ENV in message


def test_a_variant_config_of_another_architecture_is_refused(tmp_path: Path) -> None:
    wrong = copy_config("Qwen--Qwen3-8B.json", tmp_path / "c.json")
    with pytest.raises(CatalogError, match="another architecture than Qwen3-32B"):
        resolve_variant("Qwen/Qwen3-32B-FP8", get_model("Qwen3-32B"), config=wrong)


def test_a_variant_config_sets_the_checkpoints_quantization(tmp_path: Path) -> None:
    path = copy_config("Qwen--Qwen3-32B-FP8.json", tmp_path / "c.json")
    found = resolve_variant("Qwen/Qwen3-32B-FP8", get_model("Qwen3-32B"), config=path)
    assert found.quantization is not None and found.quantization.block_scaled
    plain = copy_config("Qwen--Qwen3-32B.json", tmp_path / "p.json")
    bf16 = resolve_variant("Qwen/Qwen3-32B", get_model("Qwen3-32B"), config=plain)
    assert bf16.quantization is not None and bf16.quantization.format == "bf16"


def test_a_child_process_knows_what_was_registered(tmp_path: Path) -> None:
    path = copy_config("deepseek-ai--DeepSeek-V3.json", tmp_path / "c.json")
    resolve_checkpoint("deepseek-ai/DeepSeek-V3", config=path)
    code = (
        "from runners.catalog import get_model, checkpoint_quantization\n"
        "m = get_model('deepseek-ai/DeepSeek-V3')\n"
        "q = checkpoint_quantization('deepseek-ai/DeepSeek-V3', 'bf16', m)\n"
        "print(m.mla.kv_lora_rank, q.format, q.block_scaled)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["512", "fp8", "True"]
