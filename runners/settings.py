"""How a real trial runs: its deadlines and the engine's environment, as one typed value.

Place in the data flow: whoever builds a `runners.local.LocalRunner` (the optimizer's runner
factory, from the command line or the space file) passes one `RealRunSettings`; the runner's
launch stage (`runners.launch`) reads the start deadline, the stop grace and the environment
policy, its measure stage (`runners.measure`) the benchmark deadline.

The engine's environment is the user's environment, passed through unchanged, plus:

- variables the runner always sets, which are not the user's choices (`runner_env`): the
  engine's own sockets on the loopback interface (``VLLM_HOST_IP=127.0.0.1``), no usage
  statistics or telemetry (``VLLM_NO_USAGE_STATS=1``, ``DO_NOT_TRACK=1``), and the compile
  caches (``VLLM_CACHE_ROOT``, ``TORCHINDUCTOR_CACHE_DIR``) under the study's trial folder, so
  the trials of one study share compiled kernels and nothing lands in the user's home;
- the offline variables (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``) only when the
  settings ask for them (`offline`) or when the model was found only in the local Hugging Face
  cache of the node (`runners.checkpoint.offline_reason`);
- the variables the settings name explicitly (`env`), which win over the two above;
- last, the engine adapter's own variables for the candidate's settings (e.g.
  ``VLLM_ATTENTION_BACKEND``), added by the launch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass(frozen=True)
class RealRunSettings:
    """Deadlines (seconds) and environment policy of a real trial.

    `start_deadline_s`: from the start of the engine process until its health URL answers 200
    (a 235B model's weight load plus graph capture can take well over the 600 s default).
    `bench_timeout_s`: the whole benchmark, warm-up included. `stop_grace_s`: SIGTERM to
    SIGKILL at teardown. `offline`: always run the engine with the offline variables. `env`:
    variables set for every engine, over the runner's own.
    """

    start_deadline_s: float = 600.0
    bench_timeout_s: float = 1800.0
    stop_grace_s: float = 10.0
    offline: bool = False
    env: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("start_deadline_s", "bench_timeout_s", "stop_grace_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"RealRunSettings.{name} must be a positive number of seconds")


def runner_env(cache_dir: Path) -> dict[str, str]:
    """The variables every engine gets from the runner: loopback, no telemetry, caches."""
    cache = cache_dir.resolve()
    return {
        "VLLM_HOST_IP": "127.0.0.1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CACHE_ROOT": str(cache / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
    }


def engine_env(settings: RealRunSettings, cache_dir: Path, offline: bool) -> dict[str, str]:
    """What the runner adds to the user's environment for one engine (`offline`: set the
    offline variables, as `runners.checkpoint.offline_reason` decided)."""
    env = runner_env(cache_dir)
    if offline:
        env |= OFFLINE_ENV
    return env | dict(settings.env)
