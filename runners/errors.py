"""The runners' one exception tree: every exception class of the `runners` package is here.

    ServingOptimizerError   base of everything raised on purpose; CLIs print it, no traceback
     +-- CatalogError       unknown GPU or model (the message lists the known ones)
     +-- EngineError        unknown engine, setting or version in an adapter
     +-- DatasetError       a workload's data set cannot be read or has too few usable entries
     +-- NoMetricValue      a metric was asked of a run that produced no data for it
     +-- ResultFileError    a benchmark result file is missing, unreadable, or lacks a key
     +-- ProcessError       an engine process could not be started or cleaned up (infrastructure)
     +-- RayPoolError       the Ray cluster cannot host the study's node groups
     +-- ProfileError       an emulator truth profile cannot be used (names file, field, fix)
     +-- BuildError         the compiled simulator loops do not match their sources
 +-- CalibrationError   measured runs cannot calibrate the simulator (contradictory, unusable)

The optimizer's errors derive from `ServingOptimizerError` too, in its own errors module.
Engine faults during a trial (OOM, invalid combination, crash under load) are not exceptions:
runners report them as a `Crash` inside a `TrialOutcome`. The tree above is checked against the
classes by tests/test_exception_trees.py, which also keeps exception classes out of every other
module and bare `raise ServingOptimizerError(...)` out of the package.
"""

from __future__ import annotations


class ServingOptimizerError(Exception):
    """Base class of all deliberate errors; the CLI prints these without a traceback."""


class CatalogError(ServingOptimizerError):
    """A GPU or model name that the catalogue does not know."""


class EngineError(ServingOptimizerError):
    """An engine, engine version or engine setting that an adapter does not know."""


class DatasetError(ServingOptimizerError):
    """A dataset file is missing or not in the expected format, or a workload cannot be drawn."""


class NoMetricValue(ServingOptimizerError):
    """A metric was asked of a run that produced no data for it."""


class ResultFileError(ServingOptimizerError):
    """A benchmark result file is missing, unreadable, or lacks a needed key."""


class ProcessError(ServingOptimizerError):
    """The engine process could not be started or cleaned up (an infrastructure fault)."""


class RayPoolError(ServingOptimizerError):
    """The Ray cluster cannot host the study's node groups (message says what to change)."""


class ProfileError(ServingOptimizerError):
    """An emulator truth profile that cannot be used; the message names file, field and fix."""


class CalibrationError(ServingOptimizerError):
    """Measured runs that cannot calibrate the simulator (names the run and what to fix)."""


class BuildError(ServingOptimizerError):
    """Compiled simulator loops that do not match their sources (names the file and the fix)."""
