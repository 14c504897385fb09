"""The version-aware catalogue: version strings, settings per release, defaults per release."""

from __future__ import annotations

import pytest

from runners.engines import (
    ADAPTERS,
    check_version,
    get_engine,
    parse_version,
    registry,
    release,
    resolve,
)
from runners.errors import EngineError
from runners.types import Candidate, NodeGroup, ServingConfig, SettingValue

H100X8 = NodeGroup("h100x8", "H100-SXM-80GB", 8)
MODEL, CKPT = "Qwen3-235B-A22B-Instruct-2507", "Qwen/Qwen3-235B-A22B-Instruct-2507"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0.11", "0.11.0"),
        ("v0.11.0", "0.11.0"),
        ("0.5.5.post1", "0.5.5.post1"),
        ("v0.5.4.post2", "0.5.4.post2"),
        ("1.2.0rc1", "1.2.0rc1"),
        ("2.0.RC1", "2.0.0rc1"),
    ],
)
def test_version_spellings(text: str, canonical: str) -> None:
    assert parse_version(text).text == canonical


def test_version_order() -> None:
    order = ["1.2.0rc1", "1.2.0rc2", "1.2.0", "1.2.0.post1", "1.2.1"]
    assert sorted(order, key=parse_version) == order


@pytest.mark.parametrize(
    ("engine", "version"),
    [
        ("vllm", "v0.11.0"),
        ("vllm", "0.33"),
        ("sglang", "v0.5.5.post1"),
        ("sglang", "0.5.4.post2"),
        ("sglang", "0.5.23"),
        ("trtllm", "v1.2.0rc1"),
        ("mindie", "2.0.RC1"),
    ],
)
def test_calibration_versions_resolve(engine: str, version: str) -> None:
    assert get_engine(engine, version).name == engine


@pytest.mark.parametrize(
    ("engine", "version", "used"),
    [
        ("vllm", "0.12", "0.11.0"),
        ("vllm", "0.15.1", "0.11.0"),
        ("vllm", "0.18.0", "0.11.0"),
        ("vllm", "0.31.0", "0.32.0"),
        ("vllm", "0.40.0", "0.33.0"),
        ("vllm", "0.10.1.1", "0.11.0"),
        ("sglang", "0.5.1", "0.5.4"),
        ("sglang", "0.4.9", "0.5.4"),
        ("sglang", "0.6.0", "0.5.23"),
        ("trtllm", "1.0.0", "1.2.0"),
        ("trtllm", "1.3.0", "1.2.1"),
        ("mindie", "1.0.RC3", "2.0.0"),
    ],
)
def test_uncatalogued_releases_take_the_nearest_catalogued_one(
    engine: str, version: str, used: str, capsys: pytest.CaptureFixture[str]
) -> None:
    found = release(engine, version)
    assert not found.catalogued
    assert found.used.text == used
    adapter = get_engine(engine, version)
    assert adapter.version.text == used
    get_engine(engine, version)  # cached: no second warning
    err = capsys.readouterr().err
    assert err.count("warning:") <= 1  # another test may have warned first in this process
    assert "strict" in found.notice() and used in found.notice()
    with pytest.raises(EngineError, match="not in the catalogue; supported"):
        check_version(adapter, version, strict=True)
    assert check_version(adapter, version) == parse_version(version).text


def test_an_uncatalogued_release_warns_once_naming_the_release_used(
    capsys: pytest.CaptureFixture[str],
) -> None:
    get_engine.cache_clear()
    registry._NOTICED.clear()
    get_engine("vllm", "0.14.2")
    get_engine("vllm", "v0.14.2")
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1, lines
    assert "vllm 0.14.2 is not in the catalogue" in lines[0]
    assert "vllm 0.11.0, the nearest catalogued release" in lines[0]


def test_catalogued_releases_never_warn(capsys: pytest.CaptureFixture[str]) -> None:
    get_engine.cache_clear()
    assert release("vllm", "v0.11.0").catalogued
    get_engine("vllm", "v0.11.0")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "text", ["0.11.1.dev3+g1a2b3c.cu128", "v0.9.2rc1", "1.1.0rc5", "2.1.RC1", "0.10.1.1"]
)
def test_published_release_spellings_parse(text: str) -> None:
    assert parse_version(text).release[0] in (0, 1, 2)


def test_a_flag_missing_from_the_release_used_is_still_an_error() -> None:
    adapter = get_engine("vllm", "0.12.0")  # the 0.11 catalogue applies
    with pytest.raises(EngineError, match=r"vllm 0\.11\.0 has no setting 'attention-backend'"):
        adapter.normalize({"attention-backend": "FLASHINFER"})


def test_removed_and_renamed_settings_name_the_version_and_replacement() -> None:
    v033 = get_engine("vllm", "0.33.0")
    assert "swap-space" not in v033.settings()
    assert "removed in 0.18" in v033.unknown_setting("swap-space")
    v011 = get_engine("vllm", "0.11.0")
    message = v011.unknown_setting("attention-backend")
    assert "vllm 0.11.0 has no setting 'attention-backend'" in message
    assert "VLLM_ATTENTION_BACKEND" in message
    sglang = get_engine("sglang", "0.5.23")
    assert "cuda-graph-max-bs-decode" in sglang.unknown_setting("cuda-graph-max-bs")
    assert "cuda-graph-max-bs" in get_engine("sglang", "0.5.9").settings()
    assert "cuda-graph-max-bs-decode" not in get_engine("sglang", "0.5.9").settings()
    assert "attn-dp-size" not in get_engine("sglang", "0.5.19").settings()


def test_every_catalogued_setting_is_complete() -> None:
    for adapter_type in ADAPTERS.values():
        for info in adapter_type.catalogue():
            assert info.help and info.kind in ("int", "float", "bool", "choice")
            assert info.source in ("flag", "env", "config")
            assert info.default is not None or info.default_note, info.name
            if info.kind == "choice":
                assert info.default in info.choices, info.name


def _vllm(version: str, settings: dict[str, SettingValue]) -> ServingConfig:
    config = resolve(Candidate.make("vllm", version, MODEL, CKPT, "bf16", settings), H100X8)
    assert isinstance(config, ServingConfig)
    return config


def test_vllm_defaults_differ_by_release() -> None:
    old, new = (
        _vllm("0.11.0", {"tensor-parallel-size": 8}),
        _vllm("0.33.0", {"tensor-parallel-size": 8}),
    )
    assert (old.mem_fraction, new.mem_fraction) == (0.9, 0.92)
    assert (old.async_scheduling, new.async_scheduling) == (False, True)
    assert (old.max_num_batched_tokens, old.max_num_seqs) == (8192, 1024)


def test_vllm_011_cannot_turn_chunked_prefill_off() -> None:
    info = get_engine("vllm", "0.11.0").settings()["enable-chunked-prefill"]
    assert info.check(False) is not None and "ignores" in str(info.check(False))
    assert _vllm("0.11.0", {"tensor-parallel-size": 8}).chunked_prefill


def test_calibration_spellings_are_accepted_by_resolve() -> None:
    config = _vllm(
        "v0.11.0",
        {
            "tensor_parallel_size": 8,
            "max_num_batched_tokens": 4096,
            "enable_expert_parallel": True,
        },
    )
    assert (config.tensor_parallel, config.max_num_batched_tokens, config.expert_parallel) == (
        8,
        4096,
        True,
    )
    trt = resolve(
        Candidate.make(
            "trtllm",
            "1.2.0rc1",
            MODEL,
            CKPT,
            "bf16",
            {
                "tp_size": 8,
                "kv_cache_free_gpu_memory_fraction": 0.8,
                "enable_chunked_prefill": True,
                "max_seq_len": 32768,
            },
        ),
        H100X8,
    )
    assert isinstance(trt, ServingConfig)
    assert (trt.mem_fraction, trt.chunked_prefill, trt.max_model_len) == (0.8, True, 32768)
    assert trt.capacity_policy == "guaranteed_no_evict"


def test_unknown_setting_in_a_candidate_is_an_error() -> None:
    with pytest.raises(EngineError, match="did you mean 'max-num-seqs'"):
        _vllm("0.33.0", {"max-num-seq": 8})
