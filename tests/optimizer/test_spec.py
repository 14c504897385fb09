"""Space-file validation: every mistake names the file, the field and what is allowed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from optimizer.errors import SpecError
from optimizer.spec.load import load_spec, resolve_space_path
from runners.engines import registry

Writer = Callable[[dict[str, Any]], Path]


def test_shipped_space_loads_by_bare_name() -> None:
    spec = load_spec("qwen3-moe.yaml")
    assert spec.name == "qwen3-moe"
    assert set(spec.engines) == {"vllm", "sglang", "trtllm"}
    assert spec.node_group.gpus_per_node == 8
    assert spec.objectives.latency.percentile == 99
    assert spec.workload.num_prompts == 1000


def test_bare_name_without_extension_resolves() -> None:
    assert resolve_space_path("qwen3-moe").name == "qwen3-moe.yaml"


def test_missing_file_lists_shipped_spaces() -> None:
    with pytest.raises(SpecError, match=r"no such space file.*qwen3-moe\.yaml"):
        load_spec("does-not-exist.yaml")


def _error_for(write: Writer, content: dict[str, Any]) -> str:
    path = write(content)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(str(path)), "the error must name the file"
    assert "\n" not in message, "the error must be one paragraph"
    return message


def test_unknown_top_level_field(write_space: Writer, shipped_space: dict[str, Any]) -> None:
    shipped_space["sampler"] = "tpe"
    assert "sampler: unknown field" in _error_for(write_space, shipped_space)


def test_wrong_type_names_the_field_path(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    shipped_space["workload"]["num_prompts"] = "many"
    assert "workload.num_prompts:" in _error_for(write_space, shipped_space)


def test_unknown_engine_setting_suggests_the_closest(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    settings = shipped_space["engines"]["vllm"]["settings"]
    settings["max-num-seq"] = settings.pop("max-num-seqs")
    message = _error_for(write_space, shipped_space)
    assert "engines.vllm.settings.max-num-seq" in message
    assert "did you mean 'max-num-seqs'" in message


def test_setting_of_the_other_engine_is_rejected(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    shipped_space["engines"]["vllm"]["settings"]["mem-fraction-static"] = {
        "type": "float",
        "low": 0.7,
        "high": 0.9,
    }
    assert "vllm 0.33.0 has no setting 'mem-fraction-static'" in _error_for(
        write_space, shipped_space
    )


def test_invalid_choice_for_engine(write_space: Writer, shipped_space: dict[str, Any]) -> None:
    shipped_space["engines"]["vllm"]["settings"]["performance-mode"]["choices"].append("turbo")
    message = _error_for(write_space, shipped_space)
    assert "engines.vllm.settings.performance-mode: choice 'turbo'" in message
    assert "balanced" in message


def test_uncatalogued_engine_version_takes_the_nearest_release(
    write_space: Writer, shipped_space: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    shipped_space["engines"]["sglang"]["version"] = "0.3.1"
    registry.get_engine.cache_clear()
    registry._NOTICED.clear()  # the one warning per process may have been given already
    spec = load_spec(write_space(shipped_space))
    assert spec.engines["sglang"].version == "0.3.1"
    assert "sglang 0.5.4, the nearest catalogued release" in capsys.readouterr().err
    with pytest.raises(SpecError, match=r"engines\.sglang\.version: sglang '0\.3\.1' is not"):
        load_spec(write_space(shipped_space), strict_versions=True)


def test_condition_on_undeclared_setting(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    settings = shipped_space["engines"]["vllm"]["settings"]
    settings["max-num-seqs"]["when"] = {"enable-chunked-prefil": True}
    assert "when.enable-chunked-prefil: conditions may only name settings declared above" in (
        _error_for(write_space, shipped_space)
    )


def test_condition_value_that_can_never_be_chosen(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    settings = shipped_space["engines"]["vllm"]["settings"]
    settings["data-parallel-size"]["when"] = {"tensor-parallel-size": [3, 4]}
    assert "3 can never be chosen for tensor-parallel-size" in _error_for(
        write_space, shipped_space
    )


def test_range_that_excludes_the_baseline_default(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    shipped_space["engines"]["vllm"]["settings"]["max-num-seqs"]["high"] = 512
    message = _error_for(write_space, shipped_space)
    assert "engines.vllm.settings.max-num-seqs: the baseline needs 1024" in message
    assert "widen it" in message


def test_log_scale_with_step_is_rejected(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    shipped_space["engines"]["vllm"]["settings"]["max-num-seqs"]["step"] = 8
    assert "log: true needs step 1" in _error_for(write_space, shipped_space)


def test_unknown_model_lists_catalogue(write_space: Writer, shipped_space: dict[str, Any]) -> None:
    shipped_space["model"]["name"] = "Qwen9-1T"
    message = _error_for(write_space, shipped_space)
    assert "model.name: unknown model 'Qwen9-1T'" in message
    assert "Qwen3-235B-A22B-Instruct-2507" in message


def test_baseline_engine_must_be_searched(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    content = copy.deepcopy(shipped_space)
    del content["engines"]["vllm"]
    assert "baseline.engine: 'vllm' is not among the engines" in _error_for(write_space, content)


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmodel: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken\.yaml: line \d+, column \d+: not valid YAML"):
        load_spec(path)


def test_non_mapping_file(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(path)


def test_unknown_gpu_names_the_hardware_field(
    write_space: Writer, shipped_space: dict[str, Any]
) -> None:
    shipped_space["hardware"]["node_groups"][0]["gpu"] = "H900"
    message = _error_for(write_space, shipped_space)
    assert "hardware.node_groups.0.gpu: unknown GPU 'H900'" in message
    assert "H100-SXM-80GB" in message
