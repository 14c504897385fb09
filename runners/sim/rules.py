"""The simulator's startup gate: the engine's static rules, asked of its registry entry.

First gate of `simulate`: a `ServingConfig` that the real engine would reject at argument
validation or model initialisation (TP not dividing the heads, block-FP8 shards, max_model_len
above the model limit, incompatible kernel backends, inconsistent scheduler limits) returns the
`Crash` with the engine's own error text before any memory planning or scheduling happens. The
rules themselves live in the engine's folder (runners/engines/<name>/checks.py); pre-flight asks
the same ones.
"""

from __future__ import annotations

from runners.engines import simulator_check
from runners.types import Crash, ServingConfig


def check_config(config: ServingConfig) -> Crash | None:
    """The first rule that rejects `config`, or None when it passes them all."""
    found = simulator_check(config)
    return None if found is None else found.crash


__all__ = ["check_config"]
