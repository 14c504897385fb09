"""Where a trial's weights are: local paths made absolute before dispatch and checked on the node.

Place in the data flow: a candidate's `checkpoint` is a Hugging Face repo id (``Qwen/Qwen3-8B``)
or a local path. On the driver, the trial pools call `absolute_checkpoint` as they accept a
candidate, so a relative path means the driver's working directory, not whatever directory a
Ray worker happens to run in. On the node that runs the trial, the runner calls
`missing_checkpoint` before launching anything: a local path that does not exist there is a
deterministic ``setup:model_missing`` failure naming the path and the node. `offline_reason`
decides whether the engine runs with the offline variables (`runners.settings`): when asked,
or when a repo id is not a local path but its snapshot is in this node's Hugging Face cache.

A checkpoint is a local path when it is absolute, starts with ``./``, ``../`` or ``~``, or names
a file or directory that exists; anything else is a repo id.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from runners.settings import RealRunSettings
from runners.types import Candidate, Crash, CrashClass

PATH_PREFIXES = ("/", "./", "../", "~")


def is_local_path(checkpoint: str) -> bool:
    """True for a path on disk, False for a Hugging Face repo id."""
    return (
        checkpoint in (".", "..")
        or checkpoint.startswith(PATH_PREFIXES)
        or Path(checkpoint).exists()
    )


def absolute_checkpoint(candidate: Candidate) -> Candidate:
    """`candidate` with a local checkpoint path made absolute (``~`` expanded, relative to this
    process's working directory); a repo id is returned unchanged."""
    if not is_local_path(candidate.checkpoint):
        return candidate
    absolute = str(Path(candidate.checkpoint).expanduser().resolve())
    if absolute == candidate.checkpoint:
        return candidate
    return dataclasses.replace(candidate, checkpoint=absolute)


def missing_checkpoint(candidate: Candidate, node: str) -> Crash | None:
    """A ``setup:model_missing`` crash if the candidate's local path does not exist here."""
    if not is_local_path(candidate.checkpoint):
        return None
    path = Path(candidate.checkpoint).expanduser()
    if path.exists():
        return None
    return Crash(
        CrashClass.MODEL_MISSING,
        f"model path {path} does not exist on node {node}: put the weights at that absolute "
        "path on every node that runs trials, or give a Hugging Face repo id",
    )


def hf_cache_dir() -> Path:
    """This node's Hugging Face hub cache, found as huggingface_hub finds it."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "huggingface" / "hub"


def in_hf_cache(repo_id: str, cache: Path | None = None) -> bool:
    """True when a snapshot of model `repo_id` is in the hub cache."""
    folder = (cache or hf_cache_dir()) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    try:
        return any(snapshot.is_dir() for snapshot in folder.iterdir())
    except OSError:
        return False


def offline_reason(settings: RealRunSettings, checkpoint: str, cache: Path | None = None) -> str:
    """Why the engine runs offline ("" when it does not): asked for, or the repo id was found
    only in this node's Hugging Face cache (no local path of that name)."""
    if settings.offline:
        return "asked for in the run settings"
    if is_local_path(checkpoint):
        return ""
    if in_hf_cache(checkpoint, cache):
        return "the model was found only in the local Hugging Face cache"
    return ""
