"""The space file's ``simulator`` section: the user's calibration the simulated runner applies.

Place in the data flow: ``simulator: {calibration: FILE, accept_poor_fit: false}`` names a file
written by ``python -m runners.sim.calibrate`` (a relative path is taken from the space file's
folder). `check_simulator` reads it when the space file is loaded, so a missing, malformed or
poor calibration stops the study before anything is stored, with an error naming the field;
`spec_calibration` gives the loaded fit to the runner choice (`optimizer.config`), and
`calibration_sentence` says in the study's provenance which calibration its numbers used and
how well it fits the runs it came from.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from optimizer.spec.file_paths import from_space_file
from runners.errors import CalibrationError
from runners.sim.fit import CalibrationFit


class SimulatorSection(BaseModel):
    """How the embedded simulator is corrected for this deployment (nothing by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calibration: str | None = None
    accept_poor_fit: bool = False

    @field_validator("calibration")
    @classmethod
    def _absolute(cls, value: str | None, info: ValidationInfo) -> str | None:
        return from_space_file(value, info)


def spec_calibration(section: SimulatorSection) -> CalibrationFit | None:
    """The calibration the section names, loaded (None: none named); `CalibrationError`."""
    if section.calibration is None:
        return None
    from runners.sim.calibration_file import load_calibration

    return load_calibration(section.calibration, section.accept_poor_fit)


def check_simulator(section: SimulatorSection) -> list[str]:
    """``simulator.calibration: <why>`` when the named calibration cannot be used."""
    try:
        spec_calibration(section)
    except CalibrationError as exc:
        return [f"simulator.calibration: {exc}"]
    return []


def calibration_sentence(section: SimulatorSection, fit: CalibrationFit) -> str:
    """Which calibration corrected the simulator, and its fit error, in one sentence."""
    errors = ", ".join(
        f"{name} {100 * fit.error[metric]:.0f}% (max {100 * fit.max_error[metric]:.0f}%)"
        for metric, name in (
            ("total_token_throughput_tok_s", "throughput"),
            ("mean_ttft_ms", "TTFT"),
            ("mean_tpot_ms", "TPOT"),
        )
        if metric in fit.error
    )
    quality = "a poor fit, accepted explicitly" if fit.poor else "a good fit"
    return (
        f"corrected by the user's calibration {section.calibration} ({fit.n_runs} runs, "
        f"{quality}; median error {errors})"
    )


__all__ = ["SimulatorSection", "calibration_sentence", "check_simulator", "spec_calibration"]
