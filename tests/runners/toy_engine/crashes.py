"""How the toy engine fails: its own error lines."""

from __future__ import annotations

from runners.engines.signatures import CrashTable, signature
from runners.types import CrashClass

CRASHES = CrashTable(
    signatures=(
        signature(
            CrashClass.TOO_MANY_GPUS,
            (r"toy: \d+ workers do not fit",),
            "RuntimeError: toy: 16 workers do not fit on 8 devices",
        ),
        signature(
            CrashClass.INVALID_CONFIG,
            (r"toy: max-batch \(\d+\) exceeds max-tokens",),
            "ValueError: toy: max-batch (512) exceeds max-tokens (256)",
        ),
        signature(
            CrashClass.MODEL_LEN,
            (r"toy: context \d+ is above the model's \d+ positions",),
            "ValueError: toy: context 65536 is above the model's 40960 positions",
        ),
    ),
    wrappers=(r"toy-serve failed to start",),
    kv_markers=(r"toy: ready",),
)
