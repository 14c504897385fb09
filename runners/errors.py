"""The project's one exception tree; every error a user can cause is one of these.

    ServingOptimizerError            base of everything raised on purpose
     +-- CatalogError                unknown GPU or model (message lists the known ones)
     +-- EngineError                 unknown engine, setting or version in an adapter
     +-- SpecError (optimizer.spec)  a space file is malformed (file, field path, fix)
     +-- StudyError (optimizer)      a study cannot be created, loaded or resumed

Engine faults during a trial (OOM, invalid combination, crash under load) are not exceptions:
runners report them as a `Crash` inside a `TrialOutcome`.
"""

from __future__ import annotations


class ServingOptimizerError(Exception):
    """Base class of all deliberate errors; the CLI prints these without a traceback."""


class CatalogError(ServingOptimizerError):
    """A GPU or model name that the catalogue does not know."""


class EngineError(ServingOptimizerError):
    """An engine, engine version or engine setting that an adapter does not know."""
