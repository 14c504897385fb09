"""The usable-memory correction of a calibration: which runs started, which ran out of memory.

Place in the data flow: `runners.sim.fit.fit_calibration` calls `fit_usable` for each engine
before fitting the speed factors. Each run's memory boundary (the smallest usable-memory factor
at which the simulator starts it, found by bisection with the simulator's own start checks) is
a constraint: a run that worked needs the factor above its boundary, a run that crashed below
its boundary. The prior (1.0) is clipped into the interval the constraints leave, and the
interval's width, when bounded on both sides, narrows the factor's sigma. `engine_calibration`
applies a set of factors exactly as the emulator applies a truth profile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from runners.errors import CalibrationError, ServingOptimizerError
from runners.sim import _sim_rng
from runners.sim.memory import check_memory, plan_memory
from runners.sim.params import Calibration, fitted_calibration
from runners.sim.profile import EngineScales, TruthProfile
from runners.sim.rules import check_config
from runners.types import Metrics, ServingConfig


class Observation(Protocol):
    """What this module reads of a measured run (`runners.sim.fit.Observation`)."""

    @property
    def config(self) -> ServingConfig: ...
    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def label(self) -> str: ...


USABLE_BOUNDS = (0.5, 1.1)
USABLE_PRIOR_SIGMA = 0.03
"""Prior uncertainty of the usable-memory factor (natural-log units) around 1.0."""


def engine_calibration(
    engine: str, gpu: str, scales: EngineScales, base: Calibration | None
) -> Calibration:
    """`base` with `scales` applied for `engine` on `gpu`, exactly as the emulator applies a
    truth profile (so a fit can recover a profile's factors)."""
    profile = TruthProfile(source="fit", engines=((engine, scales),))
    return profile.calibration(engine, gpu, base or fitted_calibration())


def _crashes(obs: Observation, scales: EngineScales, base: Calibration | None) -> bool:
    """Whether the simulator refuses to start `obs` at `scales` (config rules and memory)."""
    if check_config(obs.config) is not None:
        return True
    calib = engine_calibration(obs.config.engine, obs.config.gpu.name, scales, base)
    plan = plan_memory(obs.config, calib)
    return check_memory(obs.config, plan, _sim_rng(0), calib) is not None


def memory_boundary(obs: Observation, base: Calibration | None) -> float:
    """The smallest usable_memory factor at which the simulator starts `obs` (inf: none does,
    the low bound when all do)."""
    low, high = USABLE_BOUNDS

    def crashes(u: float) -> bool:
        try:
            return _crashes(obs, EngineScales(usable_memory=u), base)
        except ServingOptimizerError as exc:  # e.g. an engine without a simulator policy
            raise CalibrationError(f"{obs.label}: the simulator cannot run it: {exc}") from None

    if crashes(high):
        return math.inf
    if not crashes(low):
        return low
    for _ in range(14):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if crashes(mid) else (low, mid)
    return high


def fit_usable(runs: Sequence[Observation], base: Calibration | None) -> tuple[float, float, str]:
    """(factor, log-sigma, problem) of usable_memory from which runs started and which crashed."""
    lowest, highest = USABLE_BOUNDS
    need_above, need_below = lowest, highest
    problems: list[str] = []
    for obs in runs:
        boundary = memory_boundary(obs, base)
        if obs.metrics is not None:
            if math.isinf(boundary):
                problems.append(f"{obs.label} ran but the simulator cannot start it")
            else:
                need_above = max(need_above, boundary)
        elif math.isfinite(boundary) and boundary > lowest:
            need_below = min(need_below, boundary * 0.999)
        elif math.isfinite(boundary):
            problems.append(f"{obs.label} crashed, which the memory model cannot explain")
    sigma = USABLE_PRIOR_SIGMA
    if need_above > need_below:
        problems.append("the crashed and the working runs disagree on the memory boundary")
        return need_above, sigma, "; ".join(problems)
    value = min(max(1.0, need_above), need_below)
    if need_above > lowest and need_below < highest:
        sigma = min(sigma, max(1e-3, math.log(need_below / need_above) / 4))
    return value, sigma, "; ".join(problems)


__all__ = [
    "USABLE_BOUNDS",
    "USABLE_PRIOR_SIGMA",
    "engine_calibration",
    "fit_usable",
    "memory_boundary",
]
