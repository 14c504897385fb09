"""The study loop: ask -> suggest -> resolve -> pre-flight -> submit -> tell, until done.

Place in the data flow: `run_study(config, runner_or_pool)` is what the CLI, the scripts and
the tests call. It opens the storage (SQLite under studies/ by default), describes the study
(`optimizer.identity`) and stores what later readers need (the recommendation rule, the
workload warnings, the SLOs), enqueues the openings (`optimizer.enqueue`: warm start, baseline,
anchors), then loops: ask for a trial under the study's trial slot, suggest a candidate
(`optimizer.space`), resolve it once (`runners.engines.resolve_candidate`) and carry that
`Resolved` to pre-flight (`optimizer.feasibility`), the pool (with the workload every trial
sends, `optimizer.objectives.trial_workload`) and the record; tell each trial as it finishes
(`optimizer.record`) and print one line (`optimizer.progress`; on a terminal above a live
display that the runners' phases reach through `runners.phases`). At the end, when no trial meets
the SLOs, a rate search on the closest (`optimizer.rescue`). `n_trials` is the total the study
should hold: running again resumes and runs only what is missing. When the study has a
predictor, each sampled trial is the best of K proposals (`optimizer.screening`); a real
study's predictor is its shadow simulator (`optimizer.shadow`), which predicts each trial before
it runs (stored on the trial) and refits on each one told; with a stop
rule (a simulated study without --n-trials) it stops when its front converged or its time
budget is spent (`optimizer.convergence`), and says which. The driver stops early, with
its own exit status, when pre-flight rejects nearly everything, when workers keep getting lost,
and when a real engine fails to start 3 times in a row for the same reason (the machine or its
install, not the configurations, is then the problem).
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna

from optimizer.config import StudyConfig
from optimizer.convergence import Stopper
from optimizer.degenerate import store_warnings, workload_warnings
from optimizer.enqueue import enqueue_grid_point, enqueue_openings
from optimizer.feasibility import FeasibilityChecker, Verdict
from optimizer.identity import describe_study
from optimizer.interrupts import EXIT_TERMINATED, is_sigterm, sigterm_interrupts
from optimizer.live import StudyProgress
from optimizer.objectives import trial_workload
from optimizer.predictors import SimPredictor, study_predictor
from optimizer.progress import print_end, print_start, print_trial
from optimizer.provenance import Provenance, provenance_of, store_provenance
from optimizer.recommend import remember_settings
from optimizer.record import (
    DONE_STATES,
    WORKER_FAULT,
    count_trials,
    note_crash_odds,
    tell_failed,
    tell_lost,
    tell_outcome,
    tell_rejected,
    trial_id,
)
from optimizer.rescue import rescue_empty_front
from optimizer.samplers import GridPlan, make_sampler
from optimizer.screening import Screen
from optimizer.shadow import ShadowSimulator, study_shadow
from optimizer.slo_gap import store_slos
from optimizer.space import suggest
from optimizer.storage import (
    Heartbeat,
    fail_stale_trials,
    load_or_create,
    open_storage,
    trial_slot,
)
from optimizer.trial_line import describe
from runners import Runner
from runners.engines import Resolved, resolve_candidate
from runners.phases import Phase, phase_listener
from runners.pool import Finished, InlinePool, TrialPool
from runners.sim.runner import SimRunner
from runners.types import Crash, TrialOutcome, Workload

EXIT_INTERRUPTED = 130
EXIT_INFEASIBLE = 3
EXIT_WORKERS_LOST = 1
EXIT_ENGINE_WONT_START = 4
MAX_REJECTIONS_IN_A_ROW = 200
MAX_LOST_IN_A_ROW = 10
MAX_START_FAILURES_IN_A_ROW = 3
STOP_REASON = "stop_reason"
_VARYING = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]*[0-9][0-9a-fA-F]*")


@dataclass(frozen=True)
class _InFlight:
    """A trial this driver asked for and has not told yet, with its heartbeat."""

    trial: optuna.Trial
    heartbeat: contextlib.ExitStack[bool | None] = field(compare=False)
    resolved: Resolved | None = None


@dataclass
class StartFailures:
    """Real engines that failed to start, in a row, for one reason (crash class and root cause,
    with the numbers that vary between trials, such as ports and sizes, left out). A trial
    that started resets it; rejections and lost workers leave it as it is. Once the limit is
    reached it stays there (the driver stops asking and waits for the trials in flight)."""

    reason: tuple[str, str] | None = None
    crash: Crash | None = None
    count: int = 0

    def add(self, outcome: TrialOutcome) -> None:
        if self.count >= MAX_START_FAILURES_IN_A_ROW:
            return
        crash = outcome.crash
        if outcome.status != "crashed" or crash is None or crash.phase != "startup":
            self.reason, self.crash, self.count = None, None, 0
            return
        reason = (str(crash.crash_class), _VARYING.sub("N", crash.message)[:300])
        self.count = self.count + 1 if reason == self.reason else 1
        self.reason, self.crash = reason, crash


def run_study(
    config: StudyConfig,
    runner: Runner | TrialPool,
    storage: optuna.storages.BaseStorage | None = None,
) -> int:
    """Run the study until it holds `config.n_trials` finished trials; the exit status.

    Cooperative: any number of drivers may run this on one storage. Each counts finished and
    running trials and asks for a new one under `trial_slot`, so together they stop at exactly
    the total; a driver that finds only other drivers' trials running waits for them (failing
    and retrying stale ones) instead of overshooting.

    Trials in flight: a plain `Runner` is wrapped in an `InlinePool` (one trial at a time, run
    in this thread); a `TrialPool` such as `RayPool` keeps as many in flight as it has room
    for. Each trial in flight has its own heartbeat. A worker lost mid-trial is failed and
    retried with the same parameters; Ctrl-C (exit 130) or SIGTERM (exit 143) fails every trial
    in flight and enqueues it again for the next run, any other exception too (and propagates).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = config.spec
    if storage is None:
        storage = open_storage(config.storage_url, config.heartbeat_s, config.grace_s)
    seed = config.seed + _finished_count(storage, config.study_name)
    study = load_or_create(storage, config.study_name, make_sampler(config.sampler, seed))
    for note in describe_study(study, spec, config.allow_space_change, config.adopt):
        print(note, file=sys.stderr)
    remember_settings(study, spec, config.recommend)
    store_warnings(study, workload_warnings(spec))
    store_slos(study, spec)
    provenance = provenance_of(config.runner, spec)
    store_provenance(study, provenance)
    with trial_slot(storage, config.study_name):
        enqueue_openings(study, config, storage)
    checker = (
        FeasibilityChecker(spec, real_runner=config.runner.measures_engine)
        if config.preflight
        else None
    )
    shadow = study_shadow(config, study)
    screen = _screen(config, seed, checker, shadow, runner)
    loop = _Loop(
        config=config,
        study=study,
        storage=storage,
        pool=runner
        if isinstance(runner, TrialPool)
        else InlinePool(runner, spec.node_group, spec.hardware.fill_node_group),
        grid=GridPlan(spec, seed) if config.sampler == "grid" else None,
        checker=checker,
        provenance=provenance,
        screen=screen,
        shadow=shadow,
        stopper=Stopper(
            config.stop,
            config.candidates_per_trial,
            screen.unswept if screen else None,
            goodput=spec.objectives.goodput is not None,
        )
        if config.stop
        else None,
    )
    loop.progress = print_start(config, count_trials(study), provenance)
    with loop.progress.live(), sigterm_interrupts():
        status = loop.run()
    if loop.stopped is not None:
        print(loop.stopped, flush=True)
        study.set_user_attr(STOP_REASON, loop.stopped)
    if status == 0:
        rescue_empty_front(study, config, loop.pool)
        print_end(study, config, provenance)
    return status


def _screen(
    config: StudyConfig,
    seed: int,
    checker: FeasibilityChecker | None,
    shadow: ShadowSimulator | None,
    runner: Runner | TrialPool,
) -> Screen | None:
    """The screening of this run (`optimizer.screening`), None when it has no predictor. The
    simulator predictor of a simulated study run in this process hands its benchmarks to the
    trials' runner, so the chosen candidate is not simulated a second time."""
    predictor = study_predictor(config, shadow)
    if predictor is None:
        return None
    if isinstance(predictor, SimPredictor) and isinstance(runner, SimRunner):
        predictor.share_with(runner)
    return Screen(
        config.spec,
        predictor,
        trial_workload(config.spec),
        config.sampler,
        seed,
        config.candidates_per_trial,
        checker,
    )


def _finished_count(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    """All finished trials (rejections included): only used to vary the sampler seed."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return sum(
        1 for t in storage.get_all_trials(study_id, deepcopy=False) if t.state in DONE_STATES
    )


@dataclass
class _Loop:
    """One driver's loop over one study."""

    config: StudyConfig
    study: optuna.Study
    storage: optuna.storages.BaseStorage
    pool: TrialPool
    grid: GridPlan | None
    checker: FeasibilityChecker | None
    provenance: Provenance
    progress: StudyProgress | None = None
    in_flight: dict[int, _InFlight] = field(default_factory=dict)  # by trial number
    starting: list[_InFlight] = field(default_factory=list)  # asked, not yet submitted
    rejected_in_a_row: int = 0
    lost_in_a_row: int = 0
    start_failures: StartFailures = field(default_factory=StartFailures)
    shadow: ShadowSimulator | None = None  # predicts each real trial, learns from it
    screen: Screen | None = None
    stopper: Stopper | None = None
    stopped: str | None = None  # why the stop rule ended this run

    @property
    def workload(self) -> Workload:
        """What every trial sends (with goodput's load search and further workloads)."""
        return trial_workload(self.config.spec)

    def run(self) -> int:
        poll_s = min(2.0, self.config.heartbeat_s / 2)
        try:
            while True:
                stop = self._stop_reason()
                if stop is not None and not self.in_flight:
                    print(stop[0], file=sys.stderr)
                    return stop[1]
                if stop is None and self.pool.has_room():
                    trial, finished = self._ask()
                    if trial is not None:
                        self._start(trial)
                        continue
                    if not self.in_flight:
                        if finished:
                            return 0
                        time.sleep(poll_s)  # other drivers' trials in flight
                        continue
                with phase_listener(self._phase):
                    collected = self.pool.wait(poll_s)
                for done in collected:
                    self._finish(done)
        except KeyboardInterrupt as stop:
            self._fail_untold()
            print("\ninterrupted; run the same command again to resume", file=sys.stderr)
            return EXIT_TERMINATED if is_sigterm(stop) else EXIT_INTERRUPTED
        except BaseException:
            self._fail_untold()
            raise

    def _ask(self) -> tuple[optuna.Trial | None, bool]:
        """A new trial if the study still needs one; and whether it holds enough finished."""
        study, name = self.study, self.config.study_name
        with trial_slot(self.storage, name):
            fail_stale_trials(study, self.storage)
            counts = count_trials(study)
            if self.stopper is not None and self.stopped is None:
                self.stopped = self.stopper.reason(study.get_trials(deepcopy=False))
            if self.stopped is not None:
                return None, True
            if counts.finished + counts.running >= self.config.n_trials:
                return None, counts.finished >= self.config.n_trials
            if self.grid is not None and counts.waiting == 0:
                enqueue_grid_point(study, self.grid)
            if self.screen is not None and counts.waiting == 0:
                self.screen.enqueue_best(study)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # heartbeats outside optimize()
                return study.ask(), False

    def _start(self, trial: optuna.Trial) -> None:
        """Suggest, resolve once, pre-flight; then submit, or record the rejection."""
        beat = contextlib.ExitStack()
        beat.enter_context(Heartbeat(self.storage, trial_id(trial)))
        self.starting.append(_InFlight(trial, beat))
        spec = self.config.spec
        resolved = resolve_candidate(suggest(trial, spec), spec.node_group)
        verdict = (
            self.checker.check(
                resolved,
                trial.params,
                trial.distributions,
                self.study.get_trials(deepcopy=False),
            )
            if self.checker is not None
            else None
        )
        if verdict is not None and not verdict.launch:
            tell_rejected(
                self.study,
                trial,
                resolved,
                verdict.crash_class,
                verdict.message,
                verdict.crash_probability,
            )
            self.starting.clear()
            beat.close()
            self.rejected_in_a_row += 1
            self._print(trial.number, resolved, None, verdict)
            return
        self.rejected_in_a_row = 0
        if verdict is not None and self.config.runner.measures_engine:
            note_crash_odds(trial, verdict.crash_probability)
        if self.shadow is not None:
            self.shadow.before_trial(trial, resolved)
        self.in_flight[trial.number] = _InFlight(trial, beat, resolved)
        self.starting.clear()
        self.pool.submit(trial.number, resolved.candidate, self.workload)
        if self.progress is not None:
            self.progress.trial_started(trial.number, describe(resolved))

    def _finish(self, done: Finished) -> None:
        flight = self.in_flight[done.key]
        assert flight.resolved is not None
        if done.outcome is None:
            with trial_slot(self.storage, self.config.study_name):
                tell_lost(self.study, self.storage, flight.trial, done.fault)
            self.lost_in_a_row += 1
        else:
            self.lost_in_a_row = 0
            if self.config.runner.real_engine:  # simulated crashes are the configurations'
                self.start_failures.add(done.outcome)
            tell_outcome(
                self.study,
                flight.trial,
                self.config.spec,
                flight.resolved,
                done.outcome,
                self.config.runner.name,
                done,
                self.provenance,
            )
            if self.shadow is not None:
                self.shadow.after_trial(self.study)
        del self.in_flight[done.key]
        flight.heartbeat.close()
        self._print(flight.trial.number, flight.resolved, done, None)

    def _print(
        self, number: int, resolved: Resolved, done: Finished | None, verdict: Verdict | None
    ) -> None:
        if self.progress is not None:
            print_trial(self.progress, self.study, self.config, number, resolved, done, verdict)

    def _phase(self, number: int, phase: Phase) -> None:
        if self.progress is not None:
            self.progress.phase(number, phase)

    def _stop_reason(self) -> tuple[str, int] | None:
        """Why this driver must stop asking for trials (message, exit status), if it must."""
        if self.rejected_in_a_row >= MAX_REJECTIONS_IN_A_ROW:
            return (
                f"error: pre-flight rejected {self.rejected_in_a_row} candidates in a row; the "
                "space is (nearly) all infeasible for this model and hardware. See the rejected "
                "trials' crash_message, narrow the space, or pass --no-preflight.",
                EXIT_INFEASIBLE,
            )
        if self.lost_in_a_row >= MAX_LOST_IN_A_ROW:
            return (
                f"error: the workers of {self.lost_in_a_row} trials in a row were lost (see the "
                f"failed trials' {WORKER_FAULT}); check the Ray cluster, then run the same "
                "command again.",
                EXIT_WORKERS_LOST,
            )
        failures = self.start_failures
        if failures.count >= MAX_START_FAILURES_IN_A_ROW and failures.crash is not None:
            return (
                f"error: the engine failed to start {failures.count} times in a row for the "
                f"same reason, {failures.crash.crash_class}: {failures.crash.message}\nThis "
                "looks like the machine or its install, not the configurations: fix it (see "
                "the trials' engine logs), then run the same command again.",
                EXIT_ENGINE_WONT_START,
            )
        return None

    def _fail_untold(self) -> None:
        """FAIL every trial not told yet, stop their heartbeats, release the pool."""
        flights: Sequence[_InFlight] = [*self.starting, *self.in_flight.values()]
        try:
            tell_failed(self.study, self.storage, [f.trial for f in flights])
        finally:
            for flight in flights:
                flight.heartbeat.close()
            self.pool.release_all()
