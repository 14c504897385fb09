"""`LocalRunner`: run one candidate as a real engine process on this machine and benchmark it.

Data flow of one real trial: Candidate -> engine adapter `launch_spec` (argv, env, files, port
from a `PortLease`) -> `process.EngineProcess` (own process group, log file, readiness) ->
`bench.datasets` + `bench.loadgen` (the workload, timed like `vllm bench serve`) ->
`bench.summarize` -> `TrialOutcome` with the engine log and the benchmark JSON (same keys as
`vllm bench serve --save-result`) as artifacts. A process that exits during start is classified
at once from its exit code and log (the adapter's `classify` when it has one, else the
engine-neutral rules here); no 200 within the deadline is ``start:timeout``; an engine that dies
under load is classified from its log with phase ``load``; a benchmark that does not finish in
time is ``load:timeout``. The process group is always torn down and the port verified free.
The runner never raises for engine faults; only infrastructure faults (teardown failed) give
``infra_error``. `EmulatorLaunch` swaps the engine for `python -m runners.sim.serve` with the
same flags; the emulator's time scale is read back, the arrival schedule is sent that much
faster, and every measured time is scaled back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from runners.bench.loadgen import BenchResult, Endpoint, LoadConfig, make_client, run_benchmark
from runners.bench.metrics import summarize
from runners.bench.records import RequestRecords
from runners.bench.results import save_result, to_vllm_json
from runners.catalog import get_model
from runners.engines import classify as engines_classify
from runners.engines import launch_spec, resolve_candidate
from runners.errors import NoMetricValue, ProcessError
from runners.process import EngineProcess, PortLease, StartExited, StartTimeout
from runners.types import (
    Candidate,
    Crash,
    CrashClass,
    LaunchSpec,
    Placement,
    TrialOutcome,
    Workload,
)
from runners.workload import BenchRequest, RequestSet, make_requests, token_prompts

Classifier = Callable[[int, str], CrashClass]

_RULES: tuple[tuple[str, CrashClass], ...] = (
    ("larger than the available KV cache memory", CrashClass.KV_TOO_SMALL),
    ("No available memory for the cache blocks", CrashClass.NO_KV_MEMORY),
    ("Not enough memory. Please try to increase --mem-fraction-static", CrashClass.NO_KV_MEMORY),
    ("CUDA out of memory", CrashClass.RUNTIME_OOM),
    ("OutOfMemoryError", CrashClass.RUNTIME_OOM),
    ("greater than the derived max_model_len", CrashClass.MODEL_LEN),
    ("is not divisible by", CrashClass.TP_HEADS),
    ("must be greater than or equal to max_num_seqs", CrashClass.INVALID_CONFIG),
    ("is smaller than max_model_len", CrashClass.INVALID_CONFIG),
    ("invalid choice", CrashClass.INVALID_CONFIG),
    ("unrecognized arguments", CrashClass.INVALID_CONFIG),
    ("invalid int value", CrashClass.INVALID_CONFIG),
    ("invalid float value", CrashClass.INVALID_CONFIG),
)
_ERROR_LINE = re.compile(
    r"^.*?((?:[A-Za-z_.]*(?:Error|Exception)|error): .*)$|^.*?(torch\.OutOfMemoryError.*)$"
)


def generic_classify(exit_code: int, log_text: str) -> CrashClass:
    """Engine-neutral rules on the exit code and the real error texts (ENGINES.md §1.4)."""
    for needle, crash_class in _RULES:
        if needle in log_text:
            return crash_class
    if exit_code == 2:
        return CrashClass.INVALID_CONFIG
    return CrashClass.ENGINE_EXITED


_PYDANTIC_HEAD = re.compile(r"\d+ validation errors? for \w+\s*$")


def error_message(log_text: str, exit_code: int | None) -> str:
    """The engine's own error line (the last ``...Error: ...`` line), else the log's tail.

    A pydantic ``ValidationError: 1 validation error for ModelConfig`` line names no cause;
    the indented lines after it (``Value error, User-specified max_model_len ...``) do, so they
    are kept with it.
    """
    lines = [line.rstrip() for line in log_text.splitlines() if line.strip()]
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        match = _ERROR_LINE.match(line)
        if match and "Traceback" not in line:
            message = (match.group(1) or match.group(2) or line).strip()
            if _PYDANTIC_HEAD.search(message):
                details = [
                    detail.strip()
                    for detail in lines[index + 1 : index + 4]
                    if detail.startswith(" ") and "errors.pydantic.dev" not in detail
                ]
                message = " ".join([message, *details])
            return message[:2000]
    tail = "\n".join(lines[-15:])
    return f"exit code {exit_code}; log tail:\n{tail}"[:2000]


def engine_classifier(engine: str) -> Classifier:
    """The engine adapter's classification, refined by `generic_classify` when it has none."""

    def classify(exit_code: int, log_text: str) -> CrashClass:
        found = engines_classify(engine, exit_code, log_text)
        if found == CrashClass.ENGINE_EXITED:
            return generic_classify(exit_code, log_text)
        return found

    return classify


def default_engine_env(cache_dir: Path) -> dict[str, str]:
    """Offline, loopback-only engine environment with caches under `cache_dir` (VLLM_CPU.md)."""
    cache = cache_dir.resolve()
    return {
        "VLLM_HOST_IP": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CACHE_ROOT": str(cache / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
    }


@dataclass(frozen=True)
class EmulatorLaunch:
    """Run `python -m runners.sim.serve` with the engine's flags instead of the engine."""

    time_scale: float = 1.0
    startup_s: float = 1.0
    hang: str = "none"


def scale_records(records: RequestRecords, scale: float) -> RequestRecords:
    """Times measured against an emulator running `scale` x faster, in emulated seconds."""
    if scale == 1.0:
        return records
    return dataclasses.replace(
        records,
        start_s=records.start_s * scale,
        ttft_s=records.ttft_s * scale,
        e2el_s=records.e2el_s * scale,
        itl_s=records.itl_s * scale,
        duration_s=records.duration_s * scale,
    )


class LocalRunner:
    """Runs each candidate as a process on this machine. Blocking; one trial at a time per call.

    `env` is added to every engine's environment (e.g. ``VLLM_CPU_KVCACHE_SPACE``);
    `extra_args` are appended per engine (e.g. ``{"vllm": ("--generation-config", "vllm")}``).
    """

    def __init__(
        self,
        artifacts_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        extra_args: Mapping[str, tuple[str, ...]] | None = None,
        emulator: EmulatorLaunch | None = None,
        start_deadline_s: float = 600.0,
        bench_timeout_s: float = 1800.0,
        stop_grace_s: float = 10.0,
        endpoint: Endpoint = "completions",
        num_warmups: int = 1,
    ) -> None:
        self.artifacts_dir = artifacts_dir
        self.env = dict(default_engine_env(artifacts_dir / "cache") if env is None else env)
        self.extra_args = dict(extra_args or {})
        self.emulator = emulator
        self.start_deadline_s = start_deadline_s
        self.bench_timeout_s = bench_timeout_s
        self.stop_grace_s = stop_grace_s
        self.endpoint = endpoint
        self.num_warmups = num_warmups

    def command(self, spec: LaunchSpec, candidate: Candidate, placement: Placement) -> LaunchSpec:
        """The argv actually started: the engine's own, through the vLLM shim or the emulator."""
        argv = [*spec.argv, *self.extra_args.get(candidate.engine, ())]
        if self.emulator is not None:
            group = placement.node_group
            argv = [
                sys.executable,
                "-m",
                "runners.sim.serve",
                "--gpu",
                group.gpu,
                "--gpus-per-node",
                str(group.gpus_per_node),
                "--model",
                candidate.model,
                "--engine-version",
                candidate.engine_version,
                "--time-scale",
                f"{self.emulator.time_scale:g}",
                "--startup-s",
                f"{self.emulator.startup_s:g}",
                "--hang",
                self.emulator.hang,
                "--",
                *argv,
            ]
        elif argv[0] == "vllm":
            argv = [sys.executable, "-m", "runners.vllm_entry", *argv[1:]]
        elif argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        env = spec.env
        if argv[1:3] in (["-m", "runners.sim.serve"], ["-m", "runners.vllm_entry"]):
            # the child runs from the trial folder: give it this very `runners` package, not
            # whatever checkout the editable install happens to point at
            env = (*env, ("PYTHONPATH", _with_package_root(os.environ.get("PYTHONPATH", ""))))
        return dataclasses.replace(spec, argv=tuple(argv), env=env)

    def run(self, candidate: Candidate, workload: Workload, placement: Placement) -> TrialOutcome:
        started = time.perf_counter()
        trial_dir = self.artifacts_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        checkpoint = Path(candidate.checkpoint)
        if checkpoint.exists():
            candidate = dataclasses.replace(candidate, checkpoint=str(checkpoint.resolve()))
        with PortLease(placement.host) as lease:
            spec = self.command(
                launch_spec(candidate, placement, lease.port), candidate, placement
            )
            engine = EngineProcess(spec, trial_dir, trial_dir / "engine.log", self.env)
            artifacts: list[tuple[str, str]] = [
                ("engine_log", str(engine.log_path)),
                ("launch", str(trial_dir / "launch.json")),
            ]
            try:
                engine.start()
                outcome = self._drive(engine, candidate, workload, placement, trial_dir)
            finally:
                try:
                    engine.stop(self.stop_grace_s)
                    stop_error = ""
                except ProcessError as exc:
                    stop_error = str(exc)
        artifacts.extend(outcome.artifacts)
        wall = time.perf_counter() - started
        if stop_error:
            return TrialOutcome(
                "infra_error",
                crash=Crash(CrashClass.ENGINE_EXITED, f"teardown failed: {stop_error}"),
                launch=spec,
                wall_s=wall,
                artifacts=tuple(artifacts),
            )
        shape = resolve_candidate(candidate, placement.node_group)
        return dataclasses.replace(
            outcome,
            launch=spec,
            wall_s=wall,
            artifacts=tuple(artifacts),
            replicas=1,
            gpus_per_replica=shape.instance_gpus,
        )

    def _drive(
        self,
        engine: EngineProcess,
        candidate: Candidate,
        workload: Workload,
        placement: Placement,
        trial_dir: Path,
    ) -> TrialOutcome:
        classify = engine_classifier(candidate.engine)
        ready = engine.wait_ready(self.start_deadline_s)
        diagnostics: list[tuple[str, float]] = [("startup_s", ready.startup_s)]
        if isinstance(ready, StartExited):
            log = engine.log_text()
            crash = Crash(classify(ready.exit_code, log), error_message(log, ready.exit_code))
            return TrialOutcome("crashed", crash=crash, diagnostics=tuple(diagnostics))
        if isinstance(ready, StartTimeout):
            message = (
                f"{engine.spec.health_url} did not answer 200 within {self.start_deadline_s:g} s; "
                + error_message(engine.log_text(), None)
            )
            crash = Crash(CrashClass.START_TIMEOUT, message)
            return TrialOutcome("crashed", crash=crash, diagnostics=tuple(diagnostics))
        scale = self._time_scale(engine.spec) if self.emulator is not None else 1.0
        diagnostics.append(("time_scale", scale))
        request_list = make_requests(workload)
        requests = token_prompts(request_list, _vocab_size(candidate), workload.seed)
        config = LoadConfig(
            base_url=engine.spec.base_url,
            model=candidate.checkpoint,
            endpoint=self.endpoint,
            num_warmups=self.num_warmups,
            max_concurrency=workload.max_concurrency,
        )
        result = self._benchmark(config, requests, request_list, workload, scale)
        exit_code = engine.exit_code()
        if exit_code is not None:
            log = engine.log_text()
            crash = Crash(classify(exit_code, log), error_message(log, exit_code), "load")
            return TrialOutcome("crashed", crash=crash, diagnostics=tuple(diagnostics))
        if result is None:
            crash = Crash(
                CrashClass.LOAD_TIMEOUT,
                f"the benchmark did not finish within {self.bench_timeout_s:g} s "
                "(engine alive but not answering)",
                "load",
            )
            return TrialOutcome("crashed", crash=crash, diagnostics=tuple(diagnostics))
        records = scale_records(result.records(), scale)
        try:
            metrics = summarize(records, num_gpus=len(placement.gpu_ids))
        except NoMetricValue:
            errors = [r.error for r in result.results if r.error]
            first = errors[0] if errors else "no error text"
            # every request refused as a bad request (4xx) is the configuration's fault (e.g. a
            # max-model-len below the workload); 5xx answers and broken streams are the engine's
            rejected = bool(errors) and all(e.startswith("HTTP 4") for e in errors)
            crash_class = CrashClass.INVALID_CONFIG if rejected else CrashClass.LOAD_ERROR
            crash = Crash(crash_class, f"every request failed: {first}", "load")
            return TrialOutcome("crashed", crash=crash, diagnostics=tuple(diagnostics))
        scaled = dataclasses.replace(
            result,
            duration_s=records.duration_s,
            results=tuple(
                dataclasses.replace(
                    r,
                    start_s=r.start_s * scale,
                    ttft_s=r.ttft_s * scale,
                    latency_s=r.latency_s * scale,
                    itl_s=tuple(g * scale for g in r.itl_s),
                )
                for r in result.results
            ),
        )
        document = to_vllm_json(scaled, metrics, candidate.checkpoint)
        if scale != 1.0:
            document["emulator_time_scale"] = scale
        bench_path = save_result(trial_dir / "bench.json", document)
        diagnostics.append(("failed_requests", float(metrics.failed)))
        return TrialOutcome(
            "ok",
            metrics=metrics,
            diagnostics=tuple(diagnostics),
            artifacts=(("benchmark_json", str(bench_path)),),
        )

    def _benchmark(
        self,
        config: LoadConfig,
        requests: tuple[BenchRequest, ...],
        request_list: RequestSet,
        workload: Workload,
        scale: float = 1.0,
    ) -> BenchResult | None:
        # an emulator running `scale` x faster than real time must see the arrivals as fast
        times = [float(t) / scale for t in request_list.send_s]

        async def main() -> BenchResult | None:
            async with make_client() as client:
                try:
                    return await asyncio.wait_for(
                        run_benchmark(
                            client,
                            config,
                            requests,
                            times,
                            workload.request_rate,
                            workload.burstiness,
                        ),
                        self.bench_timeout_s / min(scale, 1.0),
                    )
                except TimeoutError:
                    return None

        return asyncio.run(main())

    @staticmethod
    def _time_scale(spec: LaunchSpec) -> float:
        url = f"http://{spec.host}:{spec.port}/emulator"
        try:
            with httpx.Client(timeout=5.0, trust_env=False) as client:
                return float(client.get(url).json()["time_scale"])
        except (httpx.HTTPError, KeyError, ValueError):
            return 1.0


def _with_package_root(pythonpath: str) -> str:
    """`pythonpath` with the folder holding this `runners` package first."""
    root = str(Path(__file__).resolve().parents[1])
    rest = [entry for entry in pythonpath.split(os.pathsep) if entry and entry != root]
    return os.pathsep.join([root, *rest])


def _vocab_size(candidate: Candidate) -> int:
    config = Path(candidate.checkpoint) / "config.json"
    if config.is_file():
        try:
            return int(json.loads(config.read_text())["vocab_size"])
        except (OSError, KeyError, ValueError):
            pass
    return int(get_model(candidate.model).vocab)


__all__ = ["EmulatorLaunch", "LocalRunner", "error_message", "generic_classify", "scale_records"]
