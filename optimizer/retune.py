"""`python -m optimizer.retune STUDY`: does the recommendation still hold? If not, search again.

Place in the data flow: after a study (and optionally `optimizer.validate`), when something
changed: a new engine release (``--engine-version vllm=0.33.1``, checked against the
catalogue as the space loader checks it), a changed workload (pass the edited space file as
STUDY), other drivers or hardware. It re-measures the recommended configuration
(`optimizer.recommend`) and the front through the one runner factory
(`optimizer.cli.make_runner`: the simulator with its noise model, ``--runner local``, or
``--runner emulator --emulator-profile FILE``), each ``--repeats`` times, compares with the
stored measurements (`optimizer.drift`: noise-aware; validation repeats, where stored, are the
reference and give the spread), and reports drift per configuration in the terminal and in
``<study folder>/retune/retune.md`` and ``retune.json``.

The recommendation **holds** when it ran in every repeat, neither objective drifted worse, it
meets every SLO, and the recommendation rule applied to the re-measured numbers does not pick
another configuration that beats it beyond noise. When it does not hold, retune warm-starts a
new study (``<name>-retune-<k>`` in the same storage, or ``--new-study``) from the old front
(`optimizer.warmstart`), with the new engine versions, unless ``--no-study``. Exit status: 0
when the recommendation holds, 1 when it no longer holds, 2 for unusable input (nothing run
or written).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from optimizer.adoption import best_own_trials
from optimizer.cli import (
    StudyRef,
    add_emulator_arguments,
    add_study_arguments,
    emulator_choice,
    locate,
    make_runner,
    open_study,
    spec_for,
)
from optimizer.config import RunnerChoice, StudyConfig
from optimizer.drift import (
    DEFAULT_MIN_CHANGE,
    DEFAULT_Z,
    Drift,
    NoiseLevel,
    Runs,
    compare,
    pooled_noise,
    threshold,
)
from optimizer.drift_report import RetuneResult, Verdict, noise_text
from optimizer.errors import RetuneError, SpecError, UsageError
from optimizer.loop import run_study
from optimizer.measurements import Measurement, load_measurements
from optimizer.objectives import constraint_values, objective_values
from optimizer.paths import check_name
from optimizer.provenance import provenance_of
from optimizer.recommend import choose, recommended
from optimizer.record import TrialRecord, read
from optimizer.space import candidate_from_params
from optimizer.spec.checks import cross_check
from optimizer.spec.models import StudySpec
from optimizer.storage import redact
from optimizer.version import add_version_argument
from runners import Runner
from runners.errors import ServingOptimizerError
from runners.types import Candidate, Placement

EXIT_HOLDS = 0
EXIT_NO_LONGER_HOLDS = 1
EXIT_USAGE = 2
DEFAULT_REPEATS = 3


# --- what is re-measured -------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    record: TrialRecord
    candidate: Candidate
    recommended: bool

    @property
    def label(self) -> str:
        return f"trial {self.record.number}" + (" (recommended)" if self.recommended else "")


def with_engine_versions(spec: StudySpec, pairs: Sequence[str]) -> StudySpec:
    """`spec` with engine releases replaced (``ENGINE=VERSION``), checked as a space file is."""
    engines = dict(spec.engines)
    for pair in pairs:
        name, sep, version = pair.partition("=")
        if not sep or not name.strip() or not version.strip():
            raise UsageError(f"--engine-version {pair!r}: write ENGINE=VERSION, e.g. vllm=0.33.1")
        name = name.strip()
        if name not in engines:
            raise UsageError(
                f"--engine-version {pair!r}: the space searches no engine {name!r} "
                f"(it searches {', '.join(engines)})"
            )
        engines[name] = engines[name].model_copy(update={"version": version.strip()})
    changed = spec.model_copy(update={"engines": engines})
    problems = cross_check(changed)
    if problems:
        raise SpecError(f"--engine-version: {'; '.join(problems)}")
    return changed


def subjects_of(study: optuna.Study, spec: StudySpec, top: int) -> list[Subject]:
    """The recommendation, then the rest of the front by throughput (`top` in all)."""
    best = recommended(study)
    if best is None:
        raise RetuneError(
            "the study has no completed trial that meets every SLO, so there is no "
            "recommendation to check; run or continue the study first"
        )
    front = sorted(
        (read(t) for t in best_own_trials(study)), key=lambda r: (-r.throughput, r.number)
    )
    chosen = [best, *[r for r in front if r.number != best.number]][:top]
    return [
        Subject(r, candidate_from_params(spec, r.params), r.number == best.number) for r in chosen
    ]


def stored_runs(record: TrialRecord, measurements: Sequence[Measurement]) -> tuple[Runs, str]:
    """What the study holds for `record`: its validation repeats where there are at least two,
    else the search trial itself; and a phrase saying which."""
    repeats = [m for m in measurements if m.kind == "repeat" and m.trial == record.number]
    done = [m for m in repeats if m.ok and m.throughput is not None and m.latency is not None]
    if len(done) >= 2:
        runs = Runs(
            throughput=tuple(m.throughput for m in done if m.throughput is not None),
            latency=tuple(m.latency for m in done if m.latency is not None),
            crashes=tuple(m.crash_class for m in repeats if not m.ok),
        )
        return runs, f"{len(done)} validation runs"
    constraints = (dict(record.constraints),) if record.constraints else ()
    runs = Runs((record.throughput,), (record.latency,), constraints)
    return runs, "the search trial"


# --- re-measuring --------------------------------------------------------------------------


class Remeasure:
    """Runs each subject `repeats` times; run i draws workload seed ``seed + i`` (fresh prompts
    and, on the simulator, fresh noise), as validation repeats do."""

    def __init__(
        self,
        spec: StudySpec,
        runner: Runner,
        repeats: int,
        progress: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self.runner = runner
        self.repeats = repeats
        self.progress = progress
        group = spec.node_group
        self.placement = Placement(group, tuple(range(group.gpus_per_node)))

    def run(self, subject: Subject) -> Runs:
        workload = self.spec.workload_spec
        throughput: list[float] = []
        latency: list[float] = []
        constraints: list[dict[str, float]] = []
        crashes: list[str] = []
        for i in range(self.repeats):
            seeded = dataclasses.replace(workload, seed=workload.seed + i)
            outcome = self.runner.run(subject.candidate, seeded, self.placement)
            if outcome.status == "ok" and outcome.metrics is not None:
                tput, lat = objective_values(outcome.metrics, self.spec.objectives)
                throughput.append(tput)
                latency.append(lat)
                constraints.append(constraint_values(outcome.metrics, self.spec.objectives.slos))
                shown = f"{tput:,.1f} / {lat:,.1f}"
            else:
                crash = outcome.crash
                crashes.append(str(crash.crash_class) if crash else outcome.status)
                shown = f"crashed {crashes[-1]}"
            self.progress(f"  {subject.label:<26} run {i + 1}/{self.repeats}  {shown}")
        return Runs(tuple(throughput), tuple(latency), tuple(constraints), tuple(crashes))


# --- the verdict ---------------------------------------------------------------------------


def judge(
    subjects: Sequence[Subject],
    drifts: Sequence[Drift],
    noise: NoiseLevel,
    z: float,
    min_change: float,
) -> Verdict:
    """Does the recommendation (the first subject) still hold? (See the module docstring.)"""
    rec = drifts[0]
    reasons: list[str] = []
    if rec.now.crashes:
        reasons.append(f"it {rec.summary}")
    reasons += [
        f"its {c.objective} changed {c.relative:+.1%} (beyond the {c.threshold:.1%} threshold)"
        for c in rec.changes
        if c.verdict == "worse"
    ]
    broken = [name for name, value in rec.now.mean_constraints().items() if value > 0]
    if broken:
        reasons.append(f"it now breaks the SLO {', '.join(sorted(broken))}")
    remeasured = [
        dataclasses.replace(
            s.record,
            values=(d.now.mean("throughput"), d.now.mean("latency")),
            constraints=d.now.mean_constraints() or None,
        )
        for s, d in zip(subjects, drifts, strict=True)
        if d.now.completed and not d.now.crashes
    ]
    pick = choose(remeasured)
    if pick is not None and pick.number != rec.trial:
        if rec.now.completed == 0:
            reasons.append(f"trial {pick.number} is now the recommendation")
        else:
            mine = rec.now.mean("throughput")
            gain = (pick.throughput - mine) / mine
            bar = threshold(noise, "throughput", rec.now.completed, rec.now.completed, z, 0.0)
            if gain > max(bar, min_change):
                reasons.append(
                    f"trial {pick.number} now beats it ({gain:+.1%} throughput, beyond noise)"
                )
    return Verdict(not reasons, tuple(reasons))


def retune_dir(ref: StudyRef) -> Path:
    """Where retune writes: ``<study folder>/retune`` (the one place its paths are built)."""
    return ref.directory / "retune"


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m optimizer.retune",
        description="Re-measure a study's recommended configuration and front (under a new "
        "engine release or a changed workload), report drift beyond noise, and when the "
        "recommendation no longer holds, warm-start a new study from the old front.",
        epilog="Example: python -m optimizer.retune qwen3-moe --engine-version vllm=0.33.1",
    )
    add_version_argument(parser)
    add_study_arguments(parser)
    parser.add_argument(
        "--runner",
        choices=["sim", "local", "emulator"],
        default="sim",
        help="what re-measures (default: the simulator with its run-to-run noise model)",
    )
    add_emulator_arguments(parser)
    parser.add_argument(
        "--engine-version",
        action="append",
        default=[],
        metavar="ENGINE=VERSION",
        help="re-measure under this engine release (repeatable), e.g. vllm=0.33.1",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help="runs per configuration, at least 2 (default %(default)s)",
    )
    parser.add_argument(
        "--top", type=int, help="configurations re-measured (default: the space's validation.top)"
    )
    parser.add_argument(
        "--z",
        type=float,
        default=DEFAULT_Z,
        help="standard errors a change must exceed to count as drift (default %(default)s)",
    )
    parser.add_argument(
        "--min-change",
        type=float,
        default=DEFAULT_MIN_CHANGE,
        help="smallest relative change that counts as drift (default %(default)s)",
    )
    parser.add_argument(
        "--no-study", action="store_true", help="only report; never start a new study"
    )
    parser.add_argument("--new-study", help="name of the new study (default <name>-retune-<k>)")
    parser.add_argument(
        "--n-trials", type=int, help="trials of the new study (default: the space's n_trials)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    return parser.parse_args(argv)


def runner_choice(ns: argparse.Namespace) -> RunnerChoice:
    emulator = emulator_choice(ns)
    if emulator is not None:
        return emulator
    return RunnerChoice(ns.runner, noise=ns.runner == "sim")


def next_study_name(ref: StudyRef) -> str:
    taken = set(optuna.get_all_study_names(ref.url))
    k = 1
    while f"{ref.name}-retune-{k}" in taken:
        k += 1
    return f"{ref.name}-retune-{k}"


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if ns.repeats < 2:
            raise UsageError("--repeats must be at least 2: the spread of repeats is the noise")
        if ns.z <= 0 or not 0 <= ns.min_change < 1:
            raise UsageError("--z must be above 0 and --min-change in [0, 1)")
        choice = runner_choice(ns)
        ref = locate(ns.study, ns.storage, ns.study_name)
        if ns.new_study is not None:
            check_name(ns.new_study, "--new-study")
        study = open_study(ref)
        spec = with_engine_versions(spec_for(ref, study), ns.engine_version)
        subjects = subjects_of(study, spec, ns.top or spec.validation.top)
        measurements, _ = load_measurements(ref.url, ref.name)
        runner = make_runner(choice, retune_dir(ref) / "runs")
        result = retune(ref, spec, subjects, measurements, runner, choice, ns)
        search_again = not result.verdict.holds and not ns.no_study
        if search_again:
            result = dataclasses.replace(result, new_study=ns.new_study or next_study_name(ref))
        write_result(retune_dir(ref), result, spec)
        if result.new_study is None:
            return EXIT_HOLDS if result.verdict.holds else EXIT_NO_LONGER_HOLDS
        code = warm_start(ref, spec, choice, result.new_study, ns)
        return EXIT_NO_LONGER_HOLDS if code == 0 else code
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def write_result(out: Path, result: RetuneResult, spec: StudySpec) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "retune.json").write_text(result.to_json())
    (out / "retune.md").write_text(result.to_markdown(spec))
    print(f"Written: {out / 'retune.md'} and retune.json")


def retune(
    ref: StudyRef,
    spec: StudySpec,
    subjects: Sequence[Subject],
    measurements: Sequence[Measurement],
    runner: Runner,
    choice: RunnerChoice,
    ns: argparse.Namespace,
) -> RetuneResult:
    """Re-measure, compare, judge, and print what was found."""
    versions = {name: section.version for name, section in spec.engines.items()}
    progress = (lambda _line: None) if ns.quiet else (lambda line: print(line, flush=True))
    print(
        f"Retuning study {ref.name!r} in {redact(ref.url)}: {len(subjects)} configurations x "
        f"{ns.repeats} runs on runner {choice.name}; engines "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f".\n{provenance_of(choice, spec).sentence}",
        flush=True,
    )
    remeasure = Remeasure(spec, runner, ns.repeats, progress)
    stored = [stored_runs(s.record, measurements) for s in subjects]
    now = [remeasure.run(s) for s in subjects]
    noise = pooled_noise([*(runs for runs, _ in stored), *now])
    if noise is None:
        raise RetuneError(
            "no configuration completed twice, so the noise cannot be estimated; every run "
            "crashed (see the lines above)"
        )
    drifts = tuple(
        Drift(s.record.number, s.label, old, new, compare(old, new, noise, ns.z, ns.min_change))
        for s, (old, _), new in zip(subjects, stored, now, strict=True)
    )
    verdict = judge(subjects, drifts, noise, ns.z, ns.min_change)
    result = RetuneResult(
        study=ref.name,
        runner=choice.name,
        versions=versions,
        repeats=ns.repeats,
        noise=noise,
        z=ns.z,
        min_change=ns.min_change,
        drifts=drifts,
        sources=tuple(source for _, source in stored),
        verdict=verdict,
    )
    print()
    print(noise_text(noise, ns.z, ns.min_change))
    for drift in drifts:
        print(f"  {drift.label:<26} {drift.summary}")
    if verdict.holds:
        print(f"The recommendation ({subjects[0].label.split(' (')[0]}) holds.")
    else:
        print(
            f"The recommendation ({subjects[0].label.split(' (')[0]}) no longer holds: "
            + "; ".join(verdict.reasons)
        )
    return result


def warm_start(
    ref: StudyRef, spec: StudySpec, choice: RunnerChoice, name: str, ns: argparse.Namespace
) -> int:
    """Study `name` in the same storage, warm-started from the old front, on `spec`."""
    search = dataclasses.replace(choice, noise=False)
    config = StudyConfig.of(
        spec,
        study_name=name,
        storage=ref.url,
        n_trials=ns.n_trials,
        runner=search,
        warm_start=ref.name,
        quiet=ns.quiet,
    )
    print(f"\nWarm-starting study {name!r} from the front of {ref.name!r}.", flush=True)
    runner = make_runner(search, StudyRef(name, ref.url, None).directory / "trials")
    return run_study(config, runner)


if __name__ == "__main__":
    raise SystemExit(main())
