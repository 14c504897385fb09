"""Fitted constants: the shipped values are known keys within bounds; overrides take effect."""

from __future__ import annotations

import dataclasses

import pytest

from runners.catalog import known_gpus
from runners.engines import EngineCosts, engine_names
from runners.sim import Calibration, simulate
from runners.sim import calibration as shipped
from runners.sim.memory import plan_memory
from runners.sim.params import (
    SCALAR_PRIORS,
    GpuEfficiency,
    bounds,
    fitted_calibration,
    prior_value,
)
from runners.sim.reference import reference_config
from runners.types import Workload

WORK = Workload(name="w", dataset="random", num_prompts=64, input_len=1024, output_len=64)


def _known(key: str) -> bool:
    parts = key.split(".")
    if parts[0] == "gpu":
        gpu = ".".join(parts[1:-1])
        return gpu in known_gpus() and parts[-1] in {
            f.name for f in dataclasses.fields(GpuEfficiency)
        }
    if parts[0] == "engine":
        fields = {f.name for f in dataclasses.fields(EngineCosts)}
        return parts[1] in engine_names() and parts[2] in fields
    return key in SCALAR_PRIORS


def test_shipped_constants_are_known_keys_within_physical_bounds() -> None:
    assert shipped.SOURCE
    for key, value in shipped.FITTED.items():
        assert _known(key), key
        lo, hi = bounds(key)
        assert lo <= value <= hi, (key, value)
        assert prior_value(key) > 0


def test_fitted_calibration_overlays_priors() -> None:
    calib = fitted_calibration()
    for key, value in shipped.FITTED.items():
        if key.startswith("engine."):
            _, engine, name = key.split(".")
            assert getattr(calib.engine(engine), name) == value
    assert calib.efficiency("H200-SXM-141GB").mem_bw == calib.efficiency("H100-SXM-80GB").mem_bw


def out_tok_s(calib: Calibration) -> float:
    rec = simulate(reference_config(), WORK, calibration=calib).records
    assert rec is not None
    return float(rec.output_len.sum() / rec.duration_s)


def test_more_achieved_bandwidth_and_compute_means_more_throughput() -> None:
    base = Calibration()
    gpu = "gpu.H100-SXM-80GB"
    slow = base.updated({f"{gpu}.mem_bw": 0.6, f"{gpu}.moe_bf16": 0.15})
    fast = base.updated({f"{gpu}.mem_bw": 0.9, f"{gpu}.moe_bf16": 0.4})
    assert out_tok_s(slow) < out_tok_s(base) < out_tok_s(fast)


def test_frontend_costs_move_ttft() -> None:
    quick = Calibration().updated({"engine.vllm.c_in_s": 1e-3})
    slow = Calibration().updated({"engine.vllm.c_in_s": 15e-3})
    ttft = []
    for calib in (quick, slow):
        rec = simulate(reference_config(), WORK, calibration=calib).records
        assert rec is not None
        ttft.append(float(rec.ttft_s.mean()))
    assert ttft[0] < ttft[1]


def test_usable_memory_scale_moves_kv_capacity() -> None:
    small = plan_memory(
        reference_config(), Calibration().updated({"gpu.H100-SXM-80GB.usable_scale": 0.99})
    )
    large = plan_memory(
        reference_config(), Calibration().updated({"gpu.H100-SXM-80GB.usable_scale": 1.01})
    )
    assert small.kv_tokens < large.kv_tokens


@pytest.mark.parametrize("gpu", known_gpus())
def test_every_catalogue_gpu_has_efficiencies_in_range(gpu: str) -> None:
    eff = fitted_calibration().efficiency(gpu)
    for field in dataclasses.fields(GpuEfficiency):
        value = getattr(eff, field.name)
        if field.name == "host_scale":  # a ratio of host speeds, not a fraction of a peak
            low, high = bounds(field.name)
            assert low <= value <= high, (gpu, field.name, value)
            continue
        assert 0.05 <= value <= 1.1, (gpu, field.name, value)
