"""Where a study's numbers come from: simulated, emulated or measured, and on what basis.

Place in the data flow: the loop computes a `Provenance` from the runner choice and the space
(`provenance_of`) when a study starts, stores its sentence on the study (`store_provenance`) and
the kind on every trial's runner record; the terminal header and trial lines
(`optimizer.progress`), the dashboard notes (`optimizer.artifacts`, the study note) and the
report (`optimizer.report.sections`) all read it from there, so each says the same thing.
Simulated numbers carry the calibration they used (`runners.sim.provenance`), emulated ones the
truth profile the emulator ran with, measured ones that a real engine produced them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import optuna

from optimizer.config import RunnerChoice
from optimizer.spec.models import StudySpec
from optimizer.spec.simulator import calibration_sentence
from runners.catalog import get_gpu
from runners.sim.provenance import calibration_text

Kind = Literal["simulated", "emulated", "measured"]
KINDS: tuple[Kind, ...] = ("simulated", "emulated", "measured")
PROVENANCE = "provenance"
"""Study user attribute: ``{kind: sentence}`` for every kind of runner the study has used."""
KIND_KEY = "numbers"
"""Key of the kind in a trial's runner record."""
_LEGACY_KINDS: Mapping[str, Kind] = {
    "sim": "simulated",
    "emulator": "emulated",
    "local": "measured",
}


@dataclass(frozen=True)
class Provenance:
    """What produced a study's numbers (`kind`) and what they rest on (`basis`)."""

    kind: Kind
    basis: str

    @property
    def sentence(self) -> str:
        if self.kind == "simulated":
            return (
                "Simulated: every number is an estimate of the embedded simulated engine, not a "
                f"measurement. Basis: {self.basis}."
            )
        if self.kind == "emulated":
            return (
                "Emulated: measured over HTTP on the engine emulator, whose numbers come from "
                f"the simulator, not from the engine. Basis: {self.basis}."
            )
        return f"Measured: {self.basis}."


def kind_of(choice: RunnerChoice) -> Kind:
    """The kind of numbers a runner choice produces (no file is read)."""
    if choice.emulator_scale is not None:
        return "emulated"
    worker = choice.ray_worker if choice.name == "ray" else choice.name
    return "simulated" if worker == "sim" else "measured"


def provenance_of(choice: RunnerChoice, spec: StudySpec) -> Provenance:
    """The provenance of a study run with `choice` on `spec` (reads the emulator's profile)."""
    kind = kind_of(choice)
    calibration = calibration_text(get_gpu(spec.node_group.gpu), spec.engines)
    if choice.calibration is not None:
        calibration += "; " + calibration_sentence(spec.simulator, choice.calibration)
    if kind == "simulated":
        return Provenance(kind, calibration)
    if kind == "emulated":
        return Provenance(kind, f"{_profile_text(choice)}; under it, {calibration}")
    where = "a Ray cluster's nodes" if choice.name == "ray" else "this machine"
    return Provenance(kind, f"every number was measured on a real engine on {where}")


def _profile_text(choice: RunnerChoice) -> str:
    if choice.emulator_profile is None:
        return "no truth profile: it behaves as the study's simulator"
    from runners.sim.profile import load_profile

    description = load_profile(choice.emulator_profile).description
    about = f": {description}" if description else " (no description)"
    return f"truth profile {choice.emulator_profile.name}{about}"


def store_provenance(study: optuna.Study, provenance: Provenance) -> None:
    """Remember this run's provenance on the study, beside those of earlier runs."""
    known = dict(study_provenance(study))
    if known.get(provenance.kind) != provenance.sentence:
        study.set_user_attr(PROVENANCE, {**known, provenance.kind: provenance.sentence})


def study_provenance(study: optuna.Study) -> Mapping[str, str]:
    stored = study.user_attrs.get(PROVENANCE)
    return {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}


def trial_kind(runner_name: str, numbers: str) -> Kind | None:
    """The kind of a trial's numbers from its runner record: the stored kind (`numbers`), or
    for trials recorded before kinds were, what its runner's name implies (None for ``ray``,
    whose workers could have been either)."""
    for kind in KINDS:
        if numbers == kind:
            return kind
    return _LEGACY_KINDS.get(runner_name)


def sentences(study: optuna.Study, kinds: Iterable[Kind]) -> list[str]:
    """One sentence per kind of number among `kinds`, from the study's stored provenance;
    a kind without one (a study from before it was stored) says that its basis is unknown."""
    stored = study_provenance(study)
    return [
        stored.get(kind)
        or f"{kind.capitalize()}: the basis of these numbers was not recorded with this study "
        "(it predates provenance labels)."
        for kind in KINDS
        if kind in set(kinds)
    ]
