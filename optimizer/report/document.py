"""The report as a document: a list of blocks that the renderers turn into Markdown and HTML.

Place in the data flow: every section of the report (`optimizer.report.sections` and the
analyses beside it) returns blocks; `optimizer.report.render` writes them out. Also the few
text helpers the sections share (numbers, objective labels, shortened commands).
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align_right: tuple[int, ...] = ()


@dataclass(frozen=True)
class Image:
    path: str
    alt: str


Block = Heading | Para | Code | Table | Image


def num(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def labels(study: optuna.Study) -> tuple[str, str]:
    """The study's two objective names (throughput, latency)."""
    names = study.metric_names or ["throughput", "latency"]
    return names[0], names[1]


def short(command: str, width: int = 140) -> str:
    return command if len(command) <= width else command[: width - 1] + "…"
