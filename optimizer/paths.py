"""The one rule for names that become paths: study names, space-file names, export names.

A study name becomes ``studies/<name>.db`` and the folder ``<name>/`` beside it; so every name
from the command line or a space file passes `check_name` before anything is opened or written.
Only ``[A-Za-z0-9][A-Za-z0-9_.-]*`` up to 100 characters is accepted: no separators, no
traversal, no absolute paths, no NUL, no unicode look-alikes.
"""

from __future__ import annotations

import re

from optimizer.errors import UsageError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_NAME_LENGTH = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_safe_name(value: str) -> bool:
    """True when `value` can be used as one path component under the studies folder."""
    return len(value) <= MAX_NAME_LENGTH and _NAME.fullmatch(value) is not None


def check_name(value: str, source: str) -> str:
    """`value` unchanged when it is a safe name; else `UsageError` naming `source` (the flag or
    field it came from) and the fix."""
    if is_safe_name(value):
        return value
    shown = value if len(value) <= 40 else value[:40] + "..."
    raise UsageError(
        f"{source} {shown!r} cannot be used as a study name: use letters, digits, '_', '.' and "
        f"'-' only, starting with a letter or digit, at most {MAX_NAME_LENGTH} characters "
        "(no '/', '..' or spaces); pick e.g. my-study"
    )
