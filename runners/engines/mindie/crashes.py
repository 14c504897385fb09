"""How MindIE fails, as its log shows it: signatures and the line that shows it is serving.

Place in the data flow: the `CrashTable` of MindIE's registry entry, read by
`runners.engines.diagnose`. MindIE Service reports its config.json checks and NPU memory
failures in its daemon log; HCCL failures are shared signatures. "Daemon start success!" is
printed once the service is up.
"""

from __future__ import annotations

from runners.engines.signatures import CrashTable, signature
from runners.types import CrashClass

CRASHES = CrashTable(
    signatures=(
        signature(
            CrashClass.NO_KV_MEMORY,
            (r"Not enough NPU memory for KV cache blocks",),
            "RuntimeError: Not enough NPU memory for KV cache blocks (npuMemSize).",
        ),
        signature(
            CrashClass.KV_TOO_SMALL,
            (r"npu memory for KV cache \([\d.]+ GB\) cannot hold one sequence",),
            "RuntimeError: npu memory for KV cache (2.00 GB) cannot hold one sequence of "
            "maxSeqLen 32768 (16384 tokens fit); increase npuMemSize or decrease maxSeqLen.",
        ),
        signature(
            CrashClass.MODEL_LEN,
            (r"maxSeqLen \(\d+\) is larger than the model's max_position_embeddings",),
            "maxSeqLen (65536) is larger than the model's max_position_embeddings (40960).",
        ),
        signature(
            CrashClass.TOO_MANY_GPUS,
            (r"worldSize \(\d+\) is larger than",),
            "worldSize (16) is larger than the 8 NPUs of this node (worldSize must equal the "
            "number of devices in npuDeviceIds).",
        ),
        signature(
            CrashClass.UNSUPPORTED_BACKEND,
            (r"MindIE does not support FP8 weights",),
            "RuntimeError: MindIE does not support FP8 weights on this device (quantize to "
            "W8A8 INT8 with msModelSlim instead).",
        ),
        signature(
            CrashClass.INVALID_CONFIG,
            (
                r"moe_ep \(\d+\) must divide worldSize",
                r"maxInputTokenLen \(\d+\) must not exceed maxSeqLen",
            ),
            "maxInputTokenLen (4096) must not exceed maxSeqLen (2560).",
        ),
    ),
    kv_markers=(r"Daemon start success",),
)
