"""The files a simulated trial leaves behind, like a real one: benchmark JSON and an engine log.

Place in the data flow: `SimRunner` (given an artifacts folder) calls `write_trial_artifacts`
after each trial; the files go into a folder of their own and come back in
`TrialOutcome.artifacts` as ``("benchmark_json", path)`` and ``("engine_log", path)``, the names
`LocalRunner` uses, so the optimizer uploads them the same way. Both are marked as simulated:
the JSON has `vllm bench serve --save-result`'s aggregate keys (no per-request arrays) and
``"simulated": true``; the log is a few lines in the engine's own format (its simulator policy
gives the prefixes and the KV-cache lines) with a header saying no engine process ran.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import datetime
from pathlib import Path

from runners.bench.results import aggregate_fields
from runners.engines import Resolved, sim_policy
from runners.types import Metrics, TrialOutcome, Workload

SIMULATED_MARK = "SIMULATED"
BENCH_FILE = "bench-simulated.json"
LOG_FILE = "engine-simulated.log"


def bench_document(
    metrics: Metrics, model_id: str, request_rate: float, max_concurrency: int | None
) -> dict[str, object]:
    """The aggregate keys of `vllm bench serve --save-result` (no per-request arrays)."""
    return {
        "simulated": True,
        "note": "written by serving-optimizer from the simulated engine's records; "
        "aggregates only, no engine process ran",
        "date": time.strftime("%Y%m%d-%H%M%S"),
        "backend": "serving-optimizer-sim",
        "model_id": model_id,
        "num_prompts": metrics.completed + metrics.failed,
        "request_rate": "inf" if math.isinf(request_rate) else request_rate,
        "max_concurrency": max_concurrency,
        **aggregate_fields(metrics),
    }


def simulated_log(resolved: Resolved, outcome: TrialOutcome) -> str:
    """A few lines in the engine's log format from what the simulator knows, marked simulated."""
    policy = sim_policy(resolved.candidate.engine)
    info, error = policy.log_prefixes(datetime.now())
    diag = dict(outcome.diagnostics)
    lines = [
        f"# {SIMULATED_MARK} engine log: written by serving-optimizer from the simulator "
        "(runners.sim); no engine process ran.",
        "# Lines follow the engine's log format; numbers are model estimates.",
        f"{info} command: {resolved.serve_command}",
    ]
    kv = int(diag.get("kv_cache_tokens", 0))
    if kv > 0 and resolved.config is not None:
        lines.extend(f"{info} {line}" for line in policy.kv_log_lines(resolved.config, kv))
    if "replicas" in diag:
        lines.append(
            f"{info} {int(diag['replicas'])} replica(s), {int(diag.get('gpus_used', 0))} GPUs; "
            f"{int(diag.get('engine_steps', 0)):,} engine steps, "
            f"{int(diag.get('preemptions', 0)):,} preemptions, "
            f"up to {int(diag.get('max_running', 0)):,} running requests"
        )
    if outcome.crash is not None:
        lines.append(f"{error} {outcome.crash.message}")
    elif outcome.metrics is not None:
        m = outcome.metrics
        lines.append(
            f"{info} benchmark finished: {m.completed} requests in {m.duration_s:,.1f} s, "
            f"{m.output_throughput_tok_s:,.1f} output tok/s"
        )
    return "\n".join(lines) + "\n"


def write_trial_artifacts(
    folder: Path, resolved: Resolved, workload: Workload, outcome: TrialOutcome
) -> tuple[tuple[str, str], ...]:
    """Write one trial's files into a new subfolder of `folder`; return (name, path) pairs."""
    trial_dir = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, str]] = []
    if outcome.metrics is not None:
        bench = trial_dir / BENCH_FILE
        document = bench_document(
            outcome.metrics,
            resolved.candidate.checkpoint,
            workload.request_rate,
            workload.max_concurrency,
        )
        bench.write_text(json.dumps(document, indent=1), encoding="utf-8")
        files.append(("benchmark_json", str(bench)))
    log = trial_dir / LOG_FILE
    log.write_text(simulated_log(resolved, outcome), encoding="utf-8")
    files.append(("engine_log", str(log)))
    return tuple(files)


__all__ = ["SIMULATED_MARK", "bench_document", "simulated_log", "write_trial_artifacts"]
