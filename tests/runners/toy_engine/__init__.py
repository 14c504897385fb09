"""A toy fifth engine (`toy-serve`), defined entirely here: its registry entry.

It shows what adding an engine takes: this folder (catalogue and adapter, argument checks and
static rules, crash signatures) and one `register(ENTRY)` call. It has no simulator policy, so
the simulator refuses it until one is written.
"""

from __future__ import annotations

from runners.engines import EngineEntry
from tests.runners.toy_engine.adapter import ToyAdapter
from tests.runners.toy_engine.checks import RULES
from tests.runners.toy_engine.crashes import CRASHES

ENTRY = EngineEntry(
    name="toy",
    adapter=ToyAdapter,
    launch="`toy-serve MODEL`",
    rules=RULES,
    crashes=CRASHES,
)
