"""The true front of a space under a truth profile, found exhaustively, for bench_sim_to_real.

Every point of the space's lattice (categorical settings only, so the lattice is the space) is
run once through `SimRunner` with the profile's calibration and no noise, as a trial runs
(with a goodput objective, its load search): what the emulated engine would measure on
average. The true front and its hypervolume follow, with the reference point the report uses
(90% of the worst throughput, 110% of the worst latency, here over the whole lattice); a
study's progress is measured against them with the same point. With goodput,
`Truth.best_throughput` is the true best goodput.

`cached_true_front` keeps each truth in a JSON file (in the system's temporary folder) named by
a hash of the space file, the profile file and the simulator's source (runners/sim), so a
change to any of them computes it afresh; the 1,080-point space takes about half a minute per
profile on a loaded 2-core machine.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from optimizer.objectives import trial_values, trial_workload
from optimizer.report.hypervolume import hypervolume_2d
from optimizer.space import ENGINE_PARAM, VARIANT_PARAM, Walk, candidate_from_params
from optimizer.spec.load import load_spec
from optimizer.spec.models import CategoricalParam, StudySpec
from runners.pool import InlinePool
from runners.sim.profile import TruthProfile, load_profile
from runners.sim.runner import SimRunner
from runners.types import SettingValue

Point = tuple[float, float]  # (throughput, latency)


def lattice(spec: StudySpec) -> Iterator[dict[str, SettingValue]]:
    """Every point of a space whose settings are all categorical (conditions respected)."""
    for engine in spec.engines:
        for variant in spec.model.variants:
            yield from _walk(spec, engine, variant, [])


def _walk(
    spec: StudySpec, engine: str, variant: str, prefix: list[SettingValue]
) -> Iterator[dict[str, SettingValue]]:
    walk = Walk(spec, engine)
    slots = iter(walk)
    for value in prefix:
        walk.choose(next(slots), value)
    slot = next(slots, None)
    if slot is None:
        yield {ENGINE_PARAM: engine, VARIANT_PARAM: variant, **walk.params}
        return
    if not isinstance(slot.alt, CategoricalParam):
        raise SystemExit(f"{spec.name}: setting {slot.setting} is not categorical")
    for value in slot.alt.choices:
        yield from _walk(spec, engine, variant, [*prefix, value])


@dataclass(frozen=True)
class Truth:
    """A profile's truth on a space: each lattice point's values (None: it crashes), the
    hypervolume reference point and the true front's hypervolume."""

    values: dict[tuple[tuple[str, str], ...], Point | None]
    ref: Point
    hypervolume: float

    def hv(self, points: list[Point]) -> float:
        return hypervolume_2d(points, self.ref)

    @property
    def best_throughput(self) -> float:
        """The highest throughput objective of any point (with goodput: the true best
        goodput)."""
        return max((v[0] for v in self.values.values() if v is not None), default=0.0)


def key(params: dict[str, SettingValue]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def true_front(spec: StudySpec, profile: TruthProfile) -> Truth:
    pool = InlinePool(SimRunner(profile=profile), spec.node_group)
    workload = trial_workload(spec)  # with the goodput objective's load search, if any
    values: dict[tuple[tuple[str, str], ...], Point | None] = {}
    for number, params in enumerate(lattice(spec)):
        pool.submit(number, candidate_from_params(spec, params), workload)
        outcome = pool.wait(0.0)[0].outcome
        assert outcome is not None
        ok = outcome.status == "ok" and outcome.metrics is not None
        values[key(params)] = trial_values(outcome, spec).values if ok else None
    ran = [v for v in values.values() if v is not None]
    ref = (0.9 * min(t for t, _ in ran), 1.1 * max(lat for _, lat in ran))
    return Truth(values, ref, hypervolume_2d(ran, ref))


SIM_SOURCE = Path(__file__).resolve().parents[1] / "runners" / "sim"
CACHE = Path(tempfile.gettempdir()) / "sim_to_real_truth"


def truth_hash(space: Path, profile: Path) -> str:
    """What a truth depends on: the space file, the profile file and the simulator's code."""
    digest = hashlib.sha256()
    for path in [space, profile, *sorted(SIM_SOURCE.rglob("*.py"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def cached_true_front(space: Path, profile: Path) -> tuple[Truth, bool]:
    """`true_front` of the space under the profile, from the cache when it holds it (and
    whether it did)."""
    path = CACHE / f"{space.stem}--{profile.stem}--{truth_hash(space, profile)}.json"
    if path.exists():
        data = json.loads(path.read_text())
        values = {
            tuple((k, v) for k, v in pairs): (tuple(point) if point is not None else None)
            for pairs, point in data["values"]
        }
        return Truth(values, tuple(data["ref"]), data["hypervolume"]), True  # type: ignore[arg-type]
    truth = true_front(load_spec(space), load_profile(profile))
    CACHE.mkdir(parents=True, exist_ok=True)
    data = {
        "values": [[list(map(list, k)), v] for k, v in truth.values.items()],
        "ref": list(truth.ref),
        "hypervolume": truth.hypervolume,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)
    return truth, False
