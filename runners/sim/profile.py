"""Truth profiles: how an emulated engine really behaves, which the study never sees.

Place in the data flow: ``python -m runners.sim.serve --profile FILE`` reads a profile with
`load_profile` when it starts (so does the study's ``--runner emulator --emulator-profile
FILE``, first, so that a bad file stops it before anything is stored). The emulator then runs
the simulator with `TruthProfile.calibration` instead of the shipped calibration, and with
`TruthProfile.noise`: an HTTP engine that behaves unlike the study's own simulator, by known
amounts. The format is documented in docs/emulator-profile.md.

Per engine, a profile scales four things of the shipped calibration (1.0 = unchanged):
``compute_efficiency`` multiplies every compute efficiency (GEMMs, MoE, attention: the engine's
kernel quality), ``memory_bandwidth_efficiency`` the achieved HBM bandwidth,
``step_overhead`` the engine's host-side time per step and per running sequence, and
``usable_memory`` the memory the engine can use (below 1: less headroom, so more
configurations run out of memory). ``noise`` sets the run-to-run variation; its ``seed`` is
drawn afresh at every start unless the file fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runners.engines import engine_names
from runners.errors import ProfileError
from runners.sim.params import Calibration, GpuEfficiency, Noise, fitted_calibration

DEFAULT_SECTION = "default"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineScalesModel(_Strict):
    compute_efficiency: float = Field(default=1.0, ge=0.1, le=2.0)
    memory_bandwidth_efficiency: float = Field(default=1.0, ge=0.1, le=2.0)
    step_overhead: float = Field(default=1.0, ge=0.1, le=10.0)
    usable_memory: float = Field(default=1.0, ge=0.5, le=1.1)


class NoiseModel(_Strict):
    run: float = Field(default=0.0, ge=0.0, le=0.5)
    step: float = Field(default=0.0, ge=0.0, le=0.5)
    stall_probability: float = Field(default=0.0, ge=0.0, le=0.1)
    stall_ms: float = Field(default=20.0, ge=0.0, le=10_000.0)
    seed: int | None = Field(default=None, ge=0)


class ProfileModel(_Strict):
    description: str = ""
    engines: dict[str, EngineScalesModel] = Field(default_factory=dict)
    noise: NoiseModel = NoiseModel()


@dataclass(frozen=True)
class EngineScales:
    """Factors on the shipped calibration for one engine (1.0 = as the study's simulator)."""

    compute_efficiency: float = 1.0
    memory_bandwidth_efficiency: float = 1.0
    step_overhead: float = 1.0
    usable_memory: float = 1.0


@dataclass(frozen=True)
class TruthProfile:
    """A parsed profile: scales by engine (``default`` for the others), noise and its seed."""

    source: str
    engines: tuple[tuple[str, EngineScales], ...] = ()
    noise: Noise = field(default_factory=Noise)
    seed: int | None = None
    description: str = ""
    """The file's own words on how this engine behaves (shown with emulated numbers)."""

    def scales(self, engine: str) -> EngineScales:
        table = dict(self.engines)
        return table.get(engine, table.get(DEFAULT_SECTION, EngineScales()))

    def calibration(self, engine: str, gpu: str, base: Calibration | None = None) -> Calibration:
        """`base` (default: the shipped calibration) with this profile's factors for `engine`
        on `gpu`. Every efficiency of the GPU is written out, so a GPU whose values are
        transferred from another one keeps them."""
        base = base or fitted_calibration()
        scales = self.scales(engine)
        efficiency = base.efficiency(gpu)
        costs = base.engine(engine)
        changes = {
            f"gpu.{gpu}.{f.name}": float(getattr(efficiency, f.name))
            for f in fields(GpuEfficiency)
        }
        changes[f"gpu.{gpu}.mem_bw"] = efficiency.mem_bw * scales.memory_bandwidth_efficiency
        changes[f"gpu.{gpu}.usable_scale"] = efficiency.usable_scale * scales.usable_memory
        changes[f"engine.{engine}.kernel"] = costs.kernel * scales.compute_efficiency
        changes[f"engine.{engine}.cpu_step_s"] = costs.cpu_step_s * scales.step_overhead
        changes[f"engine.{engine}.cpu_per_seq_s"] = costs.cpu_per_seq_s * scales.step_overhead
        return base.updated(changes)

    def noise_seed(self) -> int:
        """The fixed seed, or a fresh one (every start of a real engine is a new run)."""
        if self.seed is not None:
            return self.seed
        return int(np.random.SeedSequence().generate_state(1)[0])


def load_profile(path: str | Path) -> TruthProfile:
    """Read and check a profile file; `ProfileError` naming the file, the field and the fix."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: the truth profile cannot be read: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not a valid YAML truth profile: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ProfileError(
            f"{path}: a truth profile is a YAML mapping with the sections engines and noise "
            f"(docs/emulator-profile.md); it holds {type(raw).__name__}"
        )
    try:
        model = ProfileModel.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(_describe(path, exc)) from None
    known = (*engine_names(), DEFAULT_SECTION)
    for name in model.engines:
        if name not in known:
            raise ProfileError(
                f"{path}: engines.{name}: unknown engine; use one of {', '.join(known)}"
            )
    noise = model.noise
    return TruthProfile(
        source=str(path),
        engines=tuple((name, EngineScales(**s.model_dump())) for name, s in model.engines.items()),
        noise=Noise(
            run_sigma=noise.run,
            step_sigma=noise.step,
            stall_prob=noise.stall_probability,
            stall_s=noise.stall_ms / 1000.0,
        ),
        seed=noise.seed,
        description=model.description.strip(),
    )


def _describe(path: Path, exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:4]:
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (remove it or check its spelling in docs/emulator-profile.md)"
        parts.append(f"{where}: {message}")
    return f"{path}: " + "; ".join(parts)


def identity_profile() -> TruthProfile:
    """The profile of an emulator without a file: the shipped calibration, no noise."""
    return TruthProfile(source="(none)")


__all__ = ["EngineScales", "TruthProfile", "identity_profile", "load_profile"]
