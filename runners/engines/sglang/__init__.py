"""SGLang (`python -m sglang.launch_server`, releases 0.5.4 to 0.5.23): its registry entry.

Everything the tool knows about SGLang lives in this folder: the release catalogue
(catalogue.py), memory defaults, parallelism and launch (adapter.py), argument checks and
static rules (checks.py), crash signatures (crashes.py) and the simulator policy (policy.py).
"""

from __future__ import annotations

from runners.engines.entry import CommandLine, EngineEntry
from runners.engines.sglang.adapter import SglangAdapter
from runners.engines.sglang.checks import RULES
from runners.engines.sglang.crashes import CRASHES
from runners.engines.sglang.policy import POLICY

ENTRY = EngineEntry(
    name="sglang",
    adapter=SglangAdapter,
    launch="`python -m sglang.launch_server --model-path MODEL`",
    rules=RULES,
    crashes=CRASHES,
    sim_policy=POLICY,
    command_line=CommandLine(
        prog="python -m sglang.launch_server",
        module="sglang.launch_server",
        model_flags=("--model-path", "--model"),
    ),
)

__all__ = ["ENTRY", "SglangAdapter"]
