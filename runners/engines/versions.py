"""Engine version strings as users and calibration data write them, parsed and compared.

Space files, calibration rows and the catalogue all name engine releases, in several spellings:
``0.11``, ``v0.11.0``, ``0.5.5.post1``, ``1.2.0rc1``, MindIE's ``2.0.RC1``, vLLM's
``0.10.1.1`` and builds such as ``0.11.1.dev3+g1a2b3c.cu128``. `parse_version` turns any of them
into a `Version` (release numbers, pre-release, post-release) that orders the way the releases
do, and `VersionRange` says where a catalogue setting exists (``since`` inclusive, ``until``
exclusive). `nearest_release` picks, for a release outside an engine's catalogued ranges, the
catalogued release whose flags and behaviour apply to it. Used by the adapters' catalogues, the
registry and `check_version`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runners.errors import EngineError

_PATTERN = re.compile(
    r"^v?(?P<release>\d+(?:\.\d+){0,3})"
    r"(?:[.-]?(?P<pre>rc|RC|a|b|alpha|beta)\.?(?P<pre_n>\d*))?"
    r"(?:[.-]?post\.?(?P<post>\d+))?"
    r"(?:[.-]?dev\.?(?P<dev>\d*))?"
    r"(?:\+[A-Za-z0-9.]+)?$"
)


@dataclass(frozen=True, order=True)
class Version:
    """A release as a sortable `key` and its canonical spelling `text`.

    ``key = (major, minor, patch, pre, post)`` where `pre` is the rc number of a pre-release
    and 1,000,000 for a final release, so ``1.2.0rc1 < 1.2.0 < 1.2.0.post1``.
    """

    key: tuple[int, int, int, int, int]
    text: str

    @property
    def release(self) -> tuple[int, int, int]:
        return self.key[0], self.key[1], self.key[2]

    def __str__(self) -> str:
        return self.text


def parse_version(text: str) -> Version:
    """Parse ``0.11``, ``v0.11.0``, ``0.5.5.post1``, ``1.2.0rc1``, ``2.0.RC1``; else raise.

    A fourth release number (``0.10.1.1``), a development build (``.dev3``) and a local label
    (``+cu128``) are accepted and do not change where the release sorts: the catalogue knows
    releases to the patch level.
    """
    cleaned = text.strip()
    match = _PATTERN.match(cleaned)
    if match is None:
        raise EngineError(
            f"{text!r} is not a version number (expected e.g. 0.11.0, v0.33.0, 0.5.5.post1, "
            "1.2.0rc1)"
        )
    given = [int(part) for part in match["release"].split(".")]
    numbers = given[:3]
    while len(numbers) < 3:
        numbers.append(0)
    pre_rank = 1_000_000  # a final release sorts after all of its pre-releases
    if match["pre"] is not None:
        pre_rank = int(match["pre_n"] or 0)
    elif match["dev"] is not None and match["post"] is None:
        pre_rank = 0  # a development build precedes the release it leads to
    post = int(match["post"]) if match["post"] is not None else 0
    canonical = ".".join(str(n) for n in numbers + given[3:])
    if match["pre"] is not None:
        canonical += f"rc{match['pre_n'] or 0}"
    if match["post"] is not None:
        canonical += f".post{post}"
    if match["dev"] is not None:
        canonical += f".dev{match['dev'] or 0}"
    return Version((numbers[0], numbers[1], numbers[2], pre_rank, post), canonical)


def earliest(text: str) -> Version:
    """The first build of release `text`, pre-releases included (``1.2`` -> ``1.2.0rc0``)."""
    version = parse_version(text)
    major, minor, patch, _, _ = version.key
    return Version((major, minor, patch, 0, 0), f"{major}.{minor}.{patch}rc0")


@dataclass(frozen=True)
class VersionRange:
    """Releases ``since <= v < until``; ``until`` None means "still present in the newest"."""

    since: str
    until: str | None = None

    def contains(self, version: Version) -> bool:
        if version < earliest(self.since):
            return False
        return self.until is None or version < earliest(self.until)

    def describe(self) -> str:
        if self.since == "0":
            return "all" if self.until is None else f"< {self.until}"
        if self.until is None:
            return f">= {self.since}"
        return f"{self.since} - <{self.until}"


ALWAYS = VersionRange("0")


def _position(version: Version) -> int:
    """A release as one number for distances: major, minor and patch as digits."""
    major, minor, patch = version.release
    return major * 1_000_000 + minor * 1_000 + patch


def nearest_release(
    version: Version, supported: tuple[VersionRange, ...], newest: str
) -> Version | None:
    """The catalogued release whose catalogue applies to `version`, or None when `version`
    lies inside a catalogued range (it is catalogued itself).

    The nearest range by release numbers wins (ties: the newer range). Below a range its first
    release applies (``1.0`` -> ``1.2.0`` for a range from 1.2); above it, the newest
    catalogued release when the range holds it, else the range's first release (``0.12`` ->
    ``0.11.0`` for a range 0.11 - <0.12).
    """
    if any(line.contains(version) for line in supported):
        return None
    newest_version = parse_version(newest)
    best: tuple[int, int, Version] | None = None
    for order, line in enumerate(supported):
        since = parse_version(line.since)
        if version < earliest(line.since):
            distance, used = _position(since) - _position(version), since
        else:
            end = parse_version(line.until) if line.until is not None else newest_version
            distance = max(0, _position(version) - _position(end))
            used = newest_version if line.contains(newest_version) else since
        if best is None or (distance, -order) < (best[0], -best[1]):
            best = (distance, order, used)
    assert best is not None, "an engine supports at least one release range"
    return best[2]
