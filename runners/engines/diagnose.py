"""Why an engine process failed: exit code and log -> a `Crash` (class + the root cause's text).

Place in the data flow: a runner that watched a real engine (or the emulator) exit, hang or die
under load hands its log here. Engines often end with a generic wrapper error over the real one
(vLLM's "Engine core initialization failed. See root cause above.", SGLang's "Initialization
failed. Please see the error messages above.", TensorRT-LLM's executor errors); when the log
holds one, the root cause is the first other error line in it (the worker's or engine core's
traceback, SGLang's scheduler exception, ``[TensorRT-LLM][ERROR]`` lines). Without a wrapper it
is the last error line. The class comes from the root cause first (the engine's signatures,
then the shared ones), else from the whole log; an out-of-memory before the KV cache existed is
a weights OOM, after it a runtime OOM; argparse's exit code 2 is an argument error; no exit code
means the engine was given up on while starting (a timeout).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from runners.engines.registry import get_entry
from runners.engines.signatures import (
    ARGPARSE_LINE,
    CLICK_LINE,
    EXCEPTION_LINE,
    OUT_OF_MEMORY,
    SHARED,
    SHARED_KV_MARKERS,
    CrashTable,
)
from runners.types import Crash, CrashClass

MESSAGE_LIMIT = 2000
_PYDANTIC_HEAD = re.compile(r"\d+ validation errors? for \w+\s*$")


@dataclass(frozen=True)
class _Compiled:
    """A `CrashTable` compiled once per engine."""

    table: CrashTable
    wrapper: re.Pattern[str] | None
    prefix: re.Pattern[str] | None
    error_lines: tuple[re.Pattern[str], ...]
    kv_marker: re.Pattern[str]


def _any(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns))


@lru_cache(maxsize=32)
def _compiled(table: CrashTable) -> _Compiled:
    markers = _any((*table.kv_markers, *SHARED_KV_MARKERS))
    assert markers is not None
    return _Compiled(
        table=table,
        wrapper=_any(table.wrappers),
        prefix=re.compile(table.line_prefix) if table.line_prefix else None,
        error_lines=(
            *(re.compile(p) for p in table.error_lines),
            EXCEPTION_LINE,
            ARGPARSE_LINE,
            CLICK_LINE,
        ),
        kv_marker=markers,
    )


@dataclass(frozen=True)
class _ErrorLine:
    text: str
    index: int


def _messages(compiled: _Compiled, log_text: str) -> list[str]:
    """Every log line with the engine's logger prefix removed, right-stripped."""
    out: list[str] = []
    for raw in log_text.splitlines():
        line = raw.rstrip()
        if compiled.prefix is not None:
            line = compiled.prefix.sub("", line, count=1)
        out.append(line)
    return out


def _error_lines(compiled: _Compiled, lines: list[str]) -> list[_ErrorLine]:
    found: list[_ErrorLine] = []
    for index, line in enumerate(lines):
        if not line.strip() or "Traceback" in line:
            continue
        for pattern in compiled.error_lines:
            match = pattern.match(line)
            if match is not None:
                found.append(_ErrorLine(match.group("error").strip(), index))
                break
    return found


def _with_details(error: _ErrorLine, lines: list[str]) -> str:
    """A pydantic ``N validation error for X`` head names no cause; its indented lines do."""
    if not _PYDANTIC_HEAD.search(error.text):
        return error.text
    details = [
        line.strip()
        for line in lines[error.index + 1 : error.index + 4]
        if line.startswith(" ") and "errors.pydantic.dev" not in line
    ]
    return " ".join([error.text, *details])


def root_cause(engine: str, log_text: str) -> str | None:
    """The error that made `engine` fail, as its log states it (None: no error line)."""
    compiled = _compiled(get_entry(engine).crashes)
    lines = _messages(compiled, log_text)
    errors = _error_lines(compiled, lines)
    if not errors:
        return None
    wrapper = compiled.wrapper
    if wrapper is not None and any(wrapper.search(e.text) for e in errors):
        real = [e for e in errors if not wrapper.search(e.text)]
        if real:
            return _with_details(real[0], lines)
    return _with_details(errors[-1], lines)


def _signature_class(table: CrashTable, text: str) -> CrashClass | None:
    for candidate in (*table.signatures, *SHARED):
        if candidate.pattern.search(text):
            return candidate.crash_class
    return None


def _classify(
    compiled: _Compiled, exit_code: int | None, log_text: str, cause: str | None
) -> CrashClass:
    if cause is not None:
        found = _signature_class(compiled.table, cause)
        if found is not None:
            return found
    found = _signature_class(compiled.table, log_text)
    if found is not None:
        return found
    oom = OUT_OF_MEMORY.search(log_text)
    if oom is not None:
        allocated = compiled.kv_marker.search(log_text, 0, oom.start())
        return CrashClass.RUNTIME_OOM if allocated else CrashClass.WEIGHTS_OOM
    if exit_code is None:
        return CrashClass.START_TIMEOUT
    if exit_code == 2:  # argparse's usage error
        return CrashClass.INVALID_CONFIG
    return CrashClass.ENGINE_EXITED


def diagnose(
    engine: str,
    exit_code: int | None,
    log_text: str,
    phase: Literal["startup", "load"] = "startup",
) -> Crash:
    """The crash of `engine` that exited with `exit_code` (None: still running when given up
    on) after writing `log_text`: its class and the root cause's own text."""
    compiled = _compiled(get_entry(engine).crashes)
    cause = root_cause(engine, log_text)
    crash_class = _classify(compiled, exit_code, log_text, cause)
    if cause is None:
        tail = "\n".join([line for line in log_text.splitlines() if line.strip()][-15:])
        cause = f"exit code {exit_code}; log tail:\n{tail}"
    return Crash(crash_class, cause[:MESSAGE_LIMIT], phase)


def classify(engine: str, exit_code: int | None, log_text: str) -> CrashClass:
    """Just the class of `diagnose` (kept for callers that record only the class)."""
    return diagnose(engine, exit_code, log_text).crash_class


__all__ = ["classify", "diagnose", "root_cause"]
