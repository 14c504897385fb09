"""`python -m optimizer.validate STUDY`: can the search's answer be trusted and deployed?

Place in the data flow: after `optimizer.loop` has filled a study, this re-runs chosen
configurations through the runner factory of `optimizer.cli` (the simulator with its run-to-run
noise model, or `--runner local` on a real engine or the emulator) and stores every
measurement with `optimizer.measurements` (a companion study ``<name>.validation`` in the same
storage); the report renders them as baseline | optimized | change tables. Four parts: repeats
of the top Pareto points and the baseline (mean, 95% interval, off-front flag); ablation of
the best configuration (each setting that differs from the baseline reverted alone); a
client-concurrency sweep of baseline and best; and the space file's other workloads. With the
simulator, repeat i draws workload seed ``seed + i``: a fresh sample of prompts and of the
simulator's noise, like a redeployment.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from optimizer.adoption import best_own_trials
from optimizer.cli import add_study_arguments, locate, make_runner, open_study, spec_for
from optimizer.config import RunnerChoice, real_run_settings, with_calibration
from optimizer.errors import NothingToValidateError, UsageError
from optimizer.measurements import (
    RATE_LEVELS,
    Kind,
    Measurement,
    companion_name,
    save_measurements,
)
from optimizer.objectives import load_search, trial_values, trial_workload
from optimizer.provenance import provenance_of
from optimizer.readiness import check_local
from optimizer.recommend import study_recommendation
from optimizer.record import baseline_record, read
from optimizer.report.build import write_report
from optimizer.report.pareto import pareto_points
from optimizer.report.recommendation import write_study_note
from optimizer.space import Walk, candidate_from_params
from optimizer.spec.models import StudySpec
from optimizer.storage import redact
from optimizer.trial_line import latency_name, latency_text, throughput_name
from optimizer.version import add_version_argument
from runners import Runner
from runners.engines import resolve_candidate, serve_command
from runners.errors import ServingOptimizerError
from runners.local import LocalRunner
from runners.types import (
    Candidate,
    EngineName,
    Placement,
    SettingValue,
    TrialOutcome,
    Workload,
)
from runners.workload import at_rate

EXIT_USAGE = 2


# --- the runs ------------------------------------------------------------------------------


SUBJECT_WIDTH = 13


@dataclass(frozen=True)
class Subject:
    """A configuration to measure: a name, the search trial it came from, its candidate."""

    name: str
    trial: int | None
    candidate: Candidate


class Validator:
    """Runs the parts for one study and returns the measurements."""

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        runner: Runner,
        *,
        repeats: int | None = None,
        top: int | None = None,
        concurrency: Sequence[int] | None = None,
        workloads: Sequence[Workload] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.study = study
        self.runner = runner
        v = spec.validation
        self.repeats = repeats or v.repeats
        self.top = top or v.top
        self.concurrency = list(concurrency or v.concurrency)
        self.workloads = (
            list(workloads)
            if workloads is not None
            else [spec.workload_for(w) for w in v.workloads]
        )
        self.progress = progress or (lambda _line: None)
        group = spec.node_group
        self.placement = Placement(group, tuple(range(group.gpus_per_node)))

    # subjects
    def baseline(self) -> Subject:
        base = baseline_record(self.study)
        if base is not None:
            return Subject("baseline", base.number, candidate_from_params(self.spec, base.params))
        raise NothingToValidateError(
            "the study has no completed baseline trial; validation compares against it"
        )

    def front(self, repeats: Sequence[Measurement] | None = None) -> list[Subject]:
        """The recommended trial first (with the noise of `repeats` when given), then the
        feasible Pareto points, highest throughput first."""
        found = study_recommendation(self.study, measurements=repeats)
        picked = [found.pick.number] if found is not None else []
        front = sorted(best_own_trials(self.study), key=lambda t: -(t.values or [0.0])[0])
        numbers = list(dict.fromkeys([*picked, *(t.number for t in front)]))
        params = {t.number: t.params for t in self.study.get_trials(deepcopy=False)}
        return [
            Subject(f"trial {n}", n, candidate_from_params(self.spec, params[n])) for n in numbers
        ]

    def knee(self, subject: Subject) -> float | None:
        """The finite request rate at which the search found `subject`'s goodput knee."""
        if subject.trial is None or self.spec.objectives.goodput is None:
            return None
        runs = read(self.study.trials[subject.trial]).workload_runs
        knee = runs[0].knee if runs else None
        if knee is None or runs[0].knob != "request_rate" or math.isinf(knee.load):
            return None
        return knee.load

    # measuring
    def measure(
        self, kind: Kind, subject: Subject, label: str, workload: Workload, name: str = ""
    ) -> Measurement:
        outcome = self.runner.run(subject.candidate, workload, self.placement)
        m = self._measurement(kind, subject, label, outcome, name)
        _, unit = throughput_name(self.spec.objectives)
        shown = (
            f"{m.throughput:>14,.1f} {unit:<13} {latency_text(m.latency):>14}"
            if m.ok and m.throughput is not None and m.latency is not None
            else f"{'crashed ' + str(m.crash_class):<43}"
        )
        broken = f"  (breaks {m.broken})" if m.broken else ""
        self.progress(f"  {kind:<8} {m.subject:<{SUBJECT_WIDTH}} {shown}  {label}{broken}")
        return m

    def section(self, title: str, label: str) -> None:
        """A section's title and the header of its columns (names, units, directions)."""
        name, _ = throughput_name(self.spec.objectives)
        latency = f"min {latency_name(self.spec.objectives.latency)}"
        self.progress(title)
        self.progress(
            f"  {'kind':<8} {'configuration':<{SUBJECT_WIDTH}} {'max ' + name:>28} "
            f"{latency:>14}  {label}"
        )

    def _measurement(
        self, kind: Kind, subject: Subject, label: str, outcome: TrialOutcome, name: str
    ) -> Measurement:
        command = serve_command(subject.candidate, self.spec.node_group)
        base = Measurement(kind, name or subject.name, subject.trial, label, command)
        if outcome.status == "ok" and outcome.metrics is not None:
            worth = trial_values(outcome, self.spec)
            return dataclasses.replace(
                base,
                throughput=worth.values[0],
                latency=worth.values[1],
                p99_ttft_ms=outcome.metrics.ttft_ms.p99,
                failed=outcome.metrics.failed,
                broken=", ".join(k for k, v in worth.constraints.items() if v > 0),
            )
        crash = outcome.crash
        return dataclasses.replace(
            base,
            crash_class=str(crash.crash_class) if crash else outcome.status,
            detail=crash.message[:500] if crash else "",
        )

    def run(self) -> list[Measurement]:
        base = self.baseline()
        front = self.front()
        if not front:
            raise NothingToValidateError("the study has no feasible completed trial to validate")
        out: list[Measurement] = []
        out += self.run_repeats([base, *[s for s in front[: self.top] if s.trial != base.trial]])
        best = self.front(out)[0]  # the repeats measured the noise the pick allows for
        out += self.run_ablation(base, best)
        out += self.run_sweep(base, best)
        out += self.run_rate_sweep(base, best)
        out += self.run_workloads(base, best)
        return out

    def run_repeats(self, subjects: Sequence[Subject]) -> list[Measurement]:
        self.section(f"repeats: {len(subjects)} configurations x {self.repeats} runs", "run")
        w = trial_workload(self.spec)
        return [
            self.measure("repeat", s, str(i), _reseeded(w, i))
            for s in subjects
            for i in range(self.repeats)
        ]

    def run_ablation(self, base: Subject, best: Subject) -> list[Measurement]:
        steps = ablation_steps(self.spec, base.candidate, best.candidate)
        self.section(
            f"ablation of {best.name}: {len(steps)} settings reverted one at a time", "reverted"
        )
        w = trial_workload(self.spec)
        out = [self.measure("ablation", best, "(best as found)", w)]
        for label, candidate in steps:
            subject = Subject(best.name, best.trial, candidate)
            out.append(self.measure("ablation", subject, label, w))
        out.append(self.measure("ablation", base, "(baseline)", w))
        return out

    def run_sweep(self, base: Subject, best: Subject) -> list[Measurement]:
        self.section(
            f"concurrency sweep {self.concurrency}: baseline and {best.name}", "max concurrency"
        )
        w = self.spec.workload_spec
        return [
            self.measure("sweep", s, str(c), dataclasses.replace(w, max_concurrency=c))
            for c in self.concurrency
            for s in (base, best)
        ]

    def run_rate_sweep(self, base: Subject, best: Subject) -> list[Measurement]:
        """Goodput: both at request rates around the recommended trial's knee."""
        knee = self.knee(best)
        if knee is None:
            return []
        rates = [round(knee * level, 3) for level in RATE_LEVELS]
        self.section(
            f"rate sweep around the knee of {best.name} ({knee:,.2f} req/s): {rates}",
            "request rate (req/s)",
        )
        w = self.spec.workload_spec
        return [
            self.measure("rate", s, f"{rate:g}", at_rate(w, rate))
            for rate in rates
            for s in (base, best)
        ]

    def run_workloads(self, base: Subject, best: Subject) -> list[Measurement]:
        search = load_search(self.spec.objectives)
        study_loads = [self.spec.workload_for(w) for w, _ in self.spec.weighted_workloads]
        loads = [dataclasses.replace(w, load_search=search) for w in study_loads]
        loads += [dataclasses.replace(w, load_search=search) for w in self.workloads]
        self.section(f"workloads {[w.name for w in loads]}: baseline and {best.name}", "workload")
        return [self.measure("workload", s, w.name, w) for w in loads for s in (base, best)]


def _reseeded(workload: Workload, index: int) -> Workload:
    """Repeat `index`: every workload with its seed moved on by `index`."""
    also = tuple(dataclasses.replace(w, seed=w.seed + index) for w in workload.also)
    return dataclasses.replace(workload, seed=workload.seed + index, also=also)


def ablation_steps(
    spec: StudySpec, base: Candidate, best: Candidate
) -> list[tuple[str, Candidate]]:
    """`best` with one difference from `base` undone at a time, as (label, candidate).

    Same engine: each setting whose value differs goes back to the baseline's value (or to
    the engine default when the baseline does not set it), and settings whose `when` no longer
    holds are dropped, as the search would. Another engine: each setting goes back to that
    engine's default, plus one step with every setting at its default. A different checkpoint
    is one more step. A step the engine would start exactly like `best` (a setting the
    search set to the engine's own default) is no difference and is left out.
    """
    steps: list[tuple[str, Candidate]] = []
    if best.weight_dtype != base.weight_dtype:
        checkpoint = (
            spec.model.checkpoint(base.weight_dtype)
            if base.weight_dtype in spec.model.variants
            else None
        )
        if checkpoint is not None:
            swapped = dataclasses.replace(
                best, checkpoint=checkpoint, weight_dtype=base.weight_dtype
            )
            steps.append((f"checkpoint {best.weight_dtype} -> {base.weight_dtype}", swapped))
    mine = best.settings_dict()
    theirs = base.settings_dict() if best.engine == base.engine else {}
    for name, value in mine.items():
        if name in theirs and theirs[name] == value:
            continue
        settings = dict(mine)
        if name in theirs:
            settings[name] = theirs[name]
            label = f"{name} {_v(value)} -> {_v(theirs[name])}"
        else:
            settings.pop(name)
            label = f"{name} {_v(value)} -> default"
        settings = _active_only(spec, best.engine, settings, theirs)
        steps.append(
            (
                label,
                Candidate.make(
                    best.engine,
                    best.engine_version,
                    best.model,
                    best.checkpoint,
                    best.weight_dtype,
                    settings,
                ),
            )
        )
    if best.engine != base.engine and mine:
        bare = Candidate.make(
            best.engine, best.engine_version, best.model, best.checkpoint, best.weight_dtype, {}
        )
        steps.append((f"every {best.engine} setting -> default", bare))
    found = _effective(best, spec)
    return [(label, c) for label, c in steps if _effective(c, spec) != found]


def _effective(candidate: Candidate, spec: StudySpec) -> object:
    """What the engine starts with (a step that changes nothing here is no difference)."""
    resolved = resolve_candidate(candidate, spec.node_group)
    return (candidate.checkpoint, resolved.effective)


def _v(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _active_only(
    spec: StudySpec,
    engine: EngineName,
    settings: dict[str, SettingValue],
    fallback: dict[str, SettingValue],
) -> dict[str, SettingValue]:
    """Drop settings whose `when` fails; fill newly active ones from `fallback` if it has them."""
    walk = Walk(spec, engine)
    for slot in walk:
        value = settings.get(slot.setting, fallback.get(slot.setting))
        if value is not None:
            walk.choose(slot, value)
    return walk.chosen


# --- command line ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m optimizer.validate",
        description="Re-measure a finished study: repeats of the front, ablation of the best "
        "configuration, a concurrency sweep and other workloads; then rewrite its report.",
        epilog="Example: python -m optimizer.validate qwen3-moe",
    )
    add_version_argument(parser)
    add_study_arguments(parser)
    parser.add_argument("--runner", choices=["sim", "local"], default="sim")
    parser.add_argument("--repeats", type=int, help="default: the space file's validation")
    parser.add_argument("--top", type=int, help="Pareto points to repeat (default: the file's)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", help="sweep levels (default: the file's)"
    )
    parser.add_argument(
        "--no-noise", action="store_true", help="simulator without its run-to-run noise model"
    )
    parser.add_argument(
        "--no-workloads", action="store_true", help="skip the space file's other workloads"
    )
    parser.add_argument("--no-report", action="store_true", help="do not rewrite the report")
    parser.add_argument(
        "--emulator",
        type=float,
        metavar="TIME_SCALE",
        help="with --runner local: start the engine emulator (python -m runners.sim.serve) "
        "with the engine's flags instead of the engine, TIME_SCALE x faster than real time",
    )
    parser.add_argument(
        "--emulator-profile",
        metavar="FILE",
        help="with --emulator: the truth profile of the emulated engine (how it really "
        "behaves; docs/emulator-profile.md)",
    )
    ns = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        ref = locate(ns.study, ns.storage, ns.study_name)
        study = open_study(ref)
        spec = spec_for(ref, study)
        if ns.emulator is not None and ns.runner != "local":
            raise UsageError("--emulator needs --runner local")
        profile = emulator_profile(ns.emulator_profile, ns.emulator)
        choice = with_calibration(
            RunnerChoice(
                ns.runner,
                noise=not ns.no_noise,
                emulator_scale=ns.emulator,
                emulator_profile=profile,
                real_run=real_run_settings(spec.real_run),
            ),
            spec,
        )
        runner = make_runner(choice, ref.directory / "validation")
        if isinstance(runner, LocalRunner) and choice.real_engine:
            check_local(spec, runner)
        validator = Validator(
            spec,
            study,
            runner,
            repeats=ns.repeats,
            top=ns.top,
            concurrency=ns.concurrency,
            workloads=[] if ns.no_workloads else None,
            progress=lambda line: print(line, flush=True),
        )
        numbers = provenance_of(choice, spec)
        print(f"Validating study {ref.name!r} in {redact(ref.url)} with runner {ns.runner}")
        print(textwrap.fill(numbers.sentence, 100, subsequent_indent="    "), flush=True)
        measurements = validator.run()
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    noise = "off" if ns.no_noise or ns.runner != "sim" else "typical (2% per run, 3% per step)"
    info: dict[str, object] = {
        "runner": ns.runner
        if ns.emulator is None
        else f"local (emulator, x{ns.emulator:g}"
        + (f", profile {profile.name})" if profile is not None else ")"),
        "repeats": validator.repeats,
        "noise": noise,
        "repeat_seeds": "workload seed + repeat index (fresh prompts and noise per repeat)",
        "numbers": numbers.sentence,
    }
    save_measurements(ref.url, ref.name, measurements, info)
    print(f"{len(measurements)} measurements stored in study {companion_name(ref.name)!r}")
    write_study_note(study, pareto_points(study))  # the noise may have changed the pick
    if not ns.no_report:
        files = write_report(study, ref.directory)
        print(f"Report: {files.markdown}")
    return 0


def emulator_profile(path: str | None, time_scale: float | None) -> Path | None:
    """``--emulator-profile``: checked here (a bad file stops before anything is measured)."""
    if path is None:
        return None
    if time_scale is None:
        raise UsageError("--emulator-profile needs --emulator TIME_SCALE (and --runner local)")
    from runners.sim.profile import load_profile

    load_profile(path)
    return Path(path)


if __name__ == "__main__":
    raise SystemExit(main())
