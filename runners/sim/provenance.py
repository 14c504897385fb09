"""What the simulator's numbers rest on: the shipped calibration, for one GPU and its engines.

Place in the data flow: beside `params`. The study labels every simulated number with
`calibration_text` (terminal, report, dashboard notes), so a reader sees whether the GPU's
efficiencies and each engine's host costs were fitted on measurements or are priors. Read from
the generated `calibration` module (its `SOURCE` line and the keys it fitted) and the efficiency
tables in `params`; nothing here is a second copy of those facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from runners.catalog import GpuSpec
from runners.sim import calibration
from runners.sim.params import EFFICIENCY_TRANSFER, efficiency_note, efficiency_source

_SOURCE = re.compile(r" on (?P<date>\d{4}-\d{2}-\d{2}): .*?(?P<n>\d+) targets \((?P<runs>[^)]*)\)")


def calibration_source() -> str:
    """The shipped calibration in a few words: when, on how many measurements of which engine
    releases (the generated `SOURCE` line verbatim when it has another form)."""
    if not calibration.FITTED:
        return "no calibration (priors only)"
    text = " ".join(calibration.SOURCE.split())
    found = _SOURCE.search(text)
    if found is None:
        return f"calibration: {text}"
    return (
        f"calibration of {found['date']} on {found['n']} published GPUStack measurements "
        f"({found['runs']})"
    )


def _fitted(prefix: str) -> bool:
    return any(key.startswith(prefix) for key in calibration.FITTED)


def gpu_text(gpu: GpuSpec) -> str:
    """Whether `gpu`'s efficiencies were fitted, carried over from another GPU, or priors."""
    if _fitted(f"gpu.{gpu.name}."):
        return f"{gpu.name} efficiencies fitted on its measurements"
    transfer = EFFICIENCY_TRANSFER.get(gpu.name)
    if transfer is not None and _fitted(f"gpu.{transfer}."):
        return f"{gpu.name} never measured: efficiencies carried over from {transfer}'s fitted"
    if efficiency_source(gpu) != gpu.name:
        return efficiency_note(gpu).removesuffix(".")
    return f"{gpu.name} never measured: its efficiencies are unfitted priors"


def engines_text(engines: Iterable[str]) -> str:
    """Which engines' host-side costs were fitted and which are priors."""
    names = sorted(set(engines))
    fitted = [e for e in names if _fitted(f"engine.{e}.")]
    priors = [e for e in names if e not in fitted]
    parts = []
    if fitted:
        parts.append(f"host costs fitted for {', '.join(fitted)}")
    if priors:
        parts.append(f"unfitted priors for {', '.join(priors)}")
    return "; ".join(parts)


def calibration_text(gpu: GpuSpec, engines: Iterable[str]) -> str:
    """The calibration a simulated study of `engines` on `gpu` uses, in one sentence."""
    return "; ".join(p for p in (calibration_source(), gpu_text(gpu), engines_text(engines)) if p)
