"""The time to first token of a request that finds the engine idle, term by term.

Place in the data flow: a reading of the simulator's own front end (`frontend`), engine policy
costs (`params.Calibration.host_costs`) and step model (`perf.StepModel`) for one lone request,
which is what a benchmark at a low request rate or at concurrency 1 measures. The event
simulation (`replica`) produces the same sum; tests hold the two together, and
docs/simulator.md ("Closed-loop latency") explains each term:

    TTFT = ingest + pipeline + first step(s) + output

- ingest: the API server parses the request and tokenizes the prompt (the engine's `c_in_s`,
  plus `c_in_per_worker_s` per further GPU worker process sharing the host, plus a per-token
  cost), shared over the API server processes;
- pipeline: the hop from the API server to the engine core and back out (the engine policy's
  low-load `latency_s`);
- first steps: the prefill of the prompt, in chunks of at most the token budget (the last
  chunk samples the first token);
- output: streaming the first token (`c_out_s`).

Host-side terms are scaled by the device's `host_scale` (1 on a GPU server), except the
per-token tokenization cost, a fixed prior.
"""

from __future__ import annotations

from dataclasses import dataclass

from runners.engines import sim_policy
from runners.sim import params
from runners.sim.perf import StepModel
from runners.types import ServingConfig


@dataclass(frozen=True)
class IdleTtft:
    """The terms of a lone request's TTFT, in seconds."""

    ingest_s: float
    pipeline_s: float
    first_steps_s: float
    output_s: float

    @property
    def total_s(self) -> float:
        return self.ingest_s + self.pipeline_s + self.first_steps_s + self.output_s


def idle_ttft(
    config: ServingConfig, prompt_len: int, calib: params.Calibration | None = None
) -> IdleTtft:
    """The TTFT terms of one `prompt_len`-token request sent to an idle engine."""
    calib = calib or params.fitted_calibration()
    costs = calib.host_costs(config.engine, config.gpu)
    policy = sim_policy(config.engine)
    workers = config.tensor_parallel * config.pipeline_parallel
    speedup = float(max(policy.engine_cores(config), config.api_server_count))
    c_in = costs.c_in_s + costs.c_in_per_worker_s * (workers - 1)
    ingest = (c_in + params.FRONTEND_C_IN_PER_TOK_S * prompt_len) / speedup
    budget = config.max_num_batched_tokens
    model = StepModel(config, max(budget, prompt_len), calib)
    steps, done = 0.0, 0
    while done < prompt_len:
        chunk = min(budget, prompt_len - done)
        last = done + chunk == prompt_len
        flop_units = chunk * (done + (chunk + 1) / 2.0)
        steps += model.step_s(chunk, 1, 1 if last else 0, 0.0, flop_units, float(done + chunk))
        done += chunk
    return IdleTtft(
        ingest_s=ingest,
        pipeline_s=costs.latency_s,
        first_steps_s=steps,
        output_s=costs.c_out_s / speedup,
    )


__all__ = ["IdleTtft", "idle_ttft"]
