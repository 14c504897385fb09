"""Paths a space file names (a dataset or trace, a calibration file): made absolute once.

Place in the data flow: the spec's pydantic models call `from_space_file` while validating, with
the space file's folder in the validation context (`optimizer.spec.load` sets it), so a relative
path means "next to the space file" wherever the command runs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationInfo


def from_space_file(value: str | None, info: ValidationInfo) -> str | None:
    """`value` as an absolute path; a relative one is taken from the space file's folder."""
    if value is None:
        return None
    path = Path(value).expanduser()
    base = (info.context or {}).get("space_dir")
    if not path.is_absolute() and isinstance(base, Path):
        path = base / path
    return str(path.absolute())


__all__ = ["from_space_file"]
