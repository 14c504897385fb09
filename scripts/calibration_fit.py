"""Fitting the simulator's efficiencies to measured runs: the stages of scripts/calibrate_sim.py.

Where it sits: `scripts/calibrate_sim.py` loads the measured runs as `Target`s (each a row of
``gpustack_runs.csv`` and its simulator case from `runners.sim.replay`) and calls `fit`, which
runs the stages that script's docstring describes (D memory boundary, A/B GPU physics, C host
costs, E kernel quality), each a bounded coordinate search in log space over a few keys of
`runners.sim.params.Calibration`; `scripts/calibration_report.py` reports the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runners.sim import _sim_rng
from runners.sim.memory import check_memory, plan_memory
from runners.sim.params import Calibration, bounds, prior_value
from runners.sim.replay import ReplayCase, predict
from runners.sim.rules import check_config

METRICS = ("total_token_throughput", "ttft_mean_ms", "tpot_mean_ms", "itl_mean_ms")
FAIL_LOSS = 3.0  # loss of a target row the simulator predicts as a crash
STEPS = (0.3, 0.1)  # log-space step sizes of the coordinate search, coarse then fine
MOVES_PER_STEP = 3


@dataclass(frozen=True)
class Target:
    """A measured run used as a fit target (or a crash example)."""

    row: dict[str, str]
    case: ReplayCase

    @property
    def group(self) -> str:
        return f"{self.row['model_family']}/{self.row['gpu']}"

    @property
    def engine(self) -> str:
        return self.row["engine"]

    def measured(self, metric: str) -> float | None:
        text = self.row.get(metric, "")
        return float(text) if text else None


Weights = dict[str, float]
PHYSICS: Weights = {"total_token_throughput": 2.0, "tpot_mean_ms": 1.0}
# Kernel quality is judged on throughput alone: an engine's TPOT is dominated by its scheduling
# policy (SGLang runs prefill batches ahead of decode), which stage C and the scheduler model.
KERNEL: Weights = {"total_token_throughput": 1.0}
HOST: Weights = {
    "total_token_throughput": 1.0,
    "ttft_mean_ms": 1.0,
    "tpot_mean_ms": 1.0,
    "itl_mean_ms": 0.5,
}


def row_loss(target: Target, calib: Calibration, weights: Weights) -> float:
    pred = predict(target.case, calib)
    if pred["outcome"] != "ok":
        return FAIL_LOSS
    total = norm = 0.0
    for metric, weight in weights.items():
        meas = target.measured(metric)
        value = pred.get(metric)
        if meas is None or meas <= 0 or not isinstance(value, float) or value <= 0:
            continue
        total += weight * abs(math.log(value / meas))
        norm += weight
    return total / norm if norm else 0.0


def _uses(target: Target, key: str) -> bool:
    """Does this key influence this target? (keeps each coordinate move cheap)"""
    config = target.case.config
    if config is None:
        return False
    parts = key.split(".")
    if parts[0] == "engine" and parts[-1] == "mxfp4":
        return config.engine == parts[1] and config.model.expert_weight_bits > 0
    if parts[0] == "engine" and parts[-1] == "fp8":
        return config.engine == parts[1] and config.weight_dtype == "fp8"
    if parts[0] == "engine":
        return config.engine == parts[1]
    if key == "ep_imbalance":
        return config.expert_parallel
    if parts[0] != "gpu" or config.gpu.name != ".".join(parts[1:-1]):
        return False
    name = parts[-1]
    moe = config.model.is_moe
    fp8 = config.weight_dtype == "fp8"
    quant4 = config.weight_quant in ("awq", "gptq") or config.model.expert_weight_bits > 0
    return {
        "mem_bw": True,
        "attention": True,
        "dense_bf16": not fp8 and not config.weight_quant,
        "moe_bf16": moe and not fp8 and config.model.expert_weight_bits == 0,
        "dense_fp8": fp8,
        "moe_fp8": moe and fp8,
        "w4a16": quant4,
    }.get(name, False)


def fit_stage(
    targets: Sequence[Target],
    keys: Sequence[str],
    weights: Weights,
    calib: Calibration,
    log: Callable[[str], None],
) -> Calibration:
    """Bounded coordinate search in log space; each key moves only while the loss drops."""
    keys = [k for k in keys if any(_uses(t, k) for t in targets)]
    for step in STEPS:
        for key in keys:
            rows = [t for t in targets if _uses(t, key)]
            lo, hi = bounds(key)
            value = min(hi, max(lo, calib.as_dict().get(key, prior_value(key))))

            def loss(
                v: float, rows: list[Target] = rows, key: str = key, base: Calibration = calib
            ) -> float:
                trial = base.updated({key: v})
                return sum(row_loss(t, trial, weights) for t in rows)

            best = loss(value)
            for _ in range(MOVES_PER_STEP):
                moved = False
                for direction in (1.0, -1.0):
                    cand = min(hi, max(lo, value * math.exp(direction * step)))
                    if cand == value:
                        continue
                    trial_loss = loss(cand)
                    if trial_loss < best - 1e-9:
                        value, best, moved = cand, trial_loss, True
                        break
                if not moved:
                    break
            calib = calib.updated({key: value})
            log(f"    {key:34s} = {value:.4g}  (loss {best / max(1, len(rows)):.3f}/row)")
    return calib


def _memory_crash(target: Target, calib: Calibration) -> bool:
    config = target.case.config
    if config is None:
        return target.case.crash is not None
    if check_config(config) is not None:
        return True
    plan = plan_memory(config, calib)
    return check_memory(config, plan, _sim_rng(0), calib) is not None


def fit_memory(
    ok: Sequence[Target], crashes: Sequence[Target], calib: Calibration, log: Callable[[str], None]
) -> Calibration:
    """Stage D, usable memory: per GPU, the smallest bounded scale of the catalogue's usable
    memory at which every measured successful run passes the memory checks (seed 0)."""
    gpus = sorted({t.case.config.gpu.name for t in ok if t.case.config is not None})
    for gpu in gpus:
        rows = [t for t in ok if t.case.config is not None and t.case.config.gpu.name == gpu]
        key = f"gpu.{gpu}.usable_scale"
        _, hi = bounds(key)
        scale = 1.0
        while scale < hi and any(_memory_crash(t, calib.updated({key: scale})) for t in rows):
            scale = min(hi, scale + 0.001)
        calib = calib.updated({key: scale})
        still = [t.row["run_id"] for t in rows if _memory_crash(t, calib)]
        mem_crashes = [
            t for t in crashes if t.case.config is not None and t.case.config.gpu.name == gpu
        ]
        kept = sum(_memory_crash(t, calib) for t in mem_crashes)
        log(
            f"    {key:34s} = {scale:.3f}  (ok runs still crashing: {still or 'none'}; "
            f"{kept}/{len(mem_crashes)} crash examples on this GPU still crash)"
        )
    return calib


def fit_crash_boundary(
    ok: Sequence[Target], crashes: Sequence[Target], calib: Calibration
) -> tuple[Calibration, str]:
    """Stage D, runtime: the runtime-transient factor between the pass and fail examples."""

    def threshold(target: Target) -> float | None:
        config = target.case.config
        if config is None:
            return None
        plan = plan_memory(config, calib)
        per_factor = plan.runtime_transient_gib / plan.transient_factor
        if per_factor <= 0:
            return None
        return plan.runtime_headroom_gib / per_factor

    survive = [x for x in (threshold(t) for t in ok) if x is not None and x > 0]
    die = [
        x
        for t in crashes
        if "inference" in t.row.get("error", "").lower() and "batched" in t.row["section"].lower()
        for x in [threshold(t)]
        if x is not None and x > 0
    ]
    lo_b, hi_b = bounds("runtime_transient_factor")
    upper = min(survive) if survive else hi_b
    lower = max(die) if die else lo_b
    if lower < upper:
        factor = math.sqrt(max(lower, lo_b) * min(upper, hi_b))
        note = f"between {lower:.2f} (crash examples) and {upper:.2f} (successful runs)"
    else:
        factor = min(upper, hi_b) * 0.999
        note = f"inconsistent examples ({lower:.2f} >= {upper:.2f}); kept every ok run alive"
    factor = min(hi_b, max(lo_b, factor))
    return calib.updated({"runtime_transient_factor": factor}), note


def gpu_keys(targets: Sequence[Target]) -> list[str]:
    gpus = sorted({t.case.config.gpu.name for t in targets if t.case.config is not None})
    names = ("mem_bw", "dense_bf16", "moe_bf16", "dense_fp8", "moe_fp8", "w4a16", "attention")
    return [f"gpu.{g}.{n}" for g in gpus for n in names] + ["ep_imbalance"]


def fit(
    targets: Sequence[Target], crashes: Sequence[Target], log: Callable[[str], None]
) -> tuple[Calibration, str]:
    calib = Calibration()
    log("  stage D: memory boundary (usable memory, runtime transient)")
    calib = fit_memory(targets, crashes, calib, log)
    calib, note = fit_crash_boundary(targets, crashes, calib)
    log(f"    runtime_transient_factor = {calib.scalar('runtime_transient_factor'):.3f} ({note})")
    vllm = [t for t in targets if t.engine == "vllm"]
    log("  stage A/B: GPU physics on vLLM runs (throughput x2, TPOT)")
    calib = fit_stage(vllm, gpu_keys(vllm), PHYSICS, calib, log)
    engines = sorted({t.engine for t in targets})
    log("  stage C: host costs per engine (TTFT, TPOT, ITL, throughput)")
    host = ("c_in_s", "c_in_per_worker_s", "c_out_s", "cpu_step_s")
    for engine in engines:
        rows = [t for t in targets if t.engine == engine]
        keys = [f"engine.{engine}.{k}" for k in host]
        calib = fit_stage(rows, keys, HOST, calib, log)
    log("  stage E: kernel quality of SGLang / TensorRT-LLM / MindIE vs vLLM")
    for engine in engines:
        if engine == "vllm":
            continue
        rows = [t for t in targets if t.engine == engine]
        # MXFP4 and FP8 first: they touch only the gpt-oss rows and the FP8 checkpoints, whose
        # kernels would otherwise drag the engine-wide factor.
        keys = [f"engine.{engine}.{k}" for k in ("mxfp4", "fp8", "kernel")]
        calib = fit_stage(rows, keys, KERNEL, calib, log)
    return calib, note
