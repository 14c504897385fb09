"""TensorRT-LLM (`trtllm-serve`, release 1.2, PyTorch backend): its registry entry.

Everything the tool knows about TensorRT-LLM lives in this folder: the release catalogue
(catalogue.py), defaults, parallelism and launch with the extra-options YAML (adapter.py),
argument checks and static rules (checks.py), crash signatures (crashes.py) and the simulator
policy (policy.py).
"""

from __future__ import annotations

from runners.engines.entry import EngineEntry
from runners.engines.trtllm.adapter import TrtllmAdapter
from runners.engines.trtllm.checks import RULES
from runners.engines.trtllm.crashes import CRASHES
from runners.engines.trtllm.policy import POLICY

ENTRY = EngineEntry(
    name="trtllm",
    adapter=TrtllmAdapter,
    launch="`trtllm-serve MODEL` + `--extra_llm_api_options` YAML",
    rules=RULES,
    crashes=CRASHES,
    sim_policy=POLICY,
)

__all__ = ["ENTRY", "TrtllmAdapter"]
