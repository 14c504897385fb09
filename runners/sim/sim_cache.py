"""`SimCache`: each simulated benchmark of a study run, made once and read back after.

Place in the data flow: the screening of a simulated study predicts candidates with a
`SimRunner` (`optimizer.predictors.SimPredictor`), and the study's trials run on another
`SimRunner`. Both hand every request list they simulate (one benchmark: one load of a load
search, one workload) to `SimRunner._once`, which with a cache looks the (resolved
configuration, request list) up here first. The predictor makes the cache and the loop hands it
to the trial's runner, so the candidate the screening chose is not simulated again when it
runs: its trial reads back the benchmarks the prediction made, and simulates only those the
prediction did not (the finer steps of a load search, `runners.load_search.coarse`).

A simulated benchmark is deterministic for its request list: the prompts and, with a `Noise`,
the noise draw both come from the workload's seed. So a cached benchmark is exactly what the
trial would simulate, with or without noise, as long as both runners simulate with the same
noise model and calibration; `fits` checks that, and a runner refuses a cache that does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runners.sim.fit import CalibrationFit
from runners.sim.params import Noise
from runners.types import ServingConfig, TrialOutcome, Workload

Key = tuple[ServingConfig, Workload]


@dataclass
class SimCache:
    """Simulated benchmarks by (resolved configuration, request list), for one noise model
    and calibration: each entry is the benchmark's outcome and the launch it would need."""

    noise: Noise | None
    calibration: CalibrationFit | None
    entries: dict[Key, tuple[TrialOutcome, float]] = field(default_factory=dict)
    simulated: int = 0  # benchmarks simulated (each once)
    reused: int = 0  # benchmarks read back instead of simulated again

    def fits(self, noise: Noise | None, calibration: CalibrationFit | None) -> bool:
        """Whether a runner with this noise model and calibration would simulate the same."""
        return noise == self.noise and calibration == self.calibration

    def get(self, key: Key) -> tuple[TrialOutcome, float] | None:
        found = self.entries.get(key)
        if found is not None:
            self.reused += 1
        return found

    def put(self, key: Key, value: tuple[TrialOutcome, float]) -> None:
        self.entries[key] = value
        self.simulated += 1


__all__ = ["SimCache"]
