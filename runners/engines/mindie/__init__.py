"""MindIE Service (Huawei Ascend, releases 2.x, `mindieservice_daemon`): its registry entry.

Everything the tool knows about MindIE lives in this folder: the config.json catalogue
(catalogue.py), config rendering, parallelism and launch (adapter.py), argument checks and
static rules (checks.py), crash signatures (crashes.py) and the simulator policy (policy.py).
"""

from __future__ import annotations

from runners.engines.entry import EngineEntry
from runners.engines.mindie.adapter import MindieAdapter
from runners.engines.mindie.checks import RULES
from runners.engines.mindie.crashes import CRASHES
from runners.engines.mindie.policy import POLICY

ENTRY = EngineEntry(
    name="mindie",
    adapter=MindieAdapter,
    launch="`mindieservice_daemon` + rendered `config.json`",
    rules=RULES,
    crashes=CRASHES,
    sim_policy=POLICY,
)

__all__ = ["ENTRY", "MindieAdapter"]
