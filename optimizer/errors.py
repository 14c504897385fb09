"""Every exception the optimizer raises on purpose; the command lines print them without a trace.

    runners.errors.ServingOptimizerError
     +-- OptimizerError          base of the optimizer's own errors
          +-- SpecError          a space file cannot be used (names file, field and fix)
          |    +-- ExpressionError    a constraint expression that cannot be parsed or evaluated
          |    +-- DuplicateKeyError  a key given twice in one YAML mapping
          +-- StudyError         a study cannot be found, opened, created or resumed
          +-- WarmStartError     the --warm-start source cannot be read
          +-- SamplerError       a sampler that cannot be used on this machine or space
          +-- UsageError         command-line options that do not go together
          +-- NothingToValidateError  a study lacks what validation compares against
          +-- NotReadyError      a node cannot run real trials (engine, model, devices, ports)
          +-- ExportError        a trial cannot be exported as asked (says what to pick instead)
          +-- RetuneError        retune cannot compare or re-measure as asked

Engine faults during a trial are not exceptions: runners report them inside a `TrialOutcome`,
and the trial record stores them. tests/test_exception_trees.py keeps this drawing
true.
"""

from __future__ import annotations

from runners.errors import ServingOptimizerError


class OptimizerError(ServingOptimizerError):
    """Base of the optimizer's own errors."""


class SpecError(OptimizerError):
    """A space file that cannot be used; the message names the file, the field and the fix."""


class ExpressionError(SpecError):
    """An expression that cannot be parsed or evaluated; the message says where and why."""


class DuplicateKeyError(SpecError):
    """A key given twice in one YAML mapping (YAML itself would keep the last one silently)."""


class StudyError(OptimizerError):
    """A study that cannot be found, opened, created or resumed."""


class WarmStartError(OptimizerError):
    """The warm-start source cannot be read."""


class SamplerError(OptimizerError):
    """A sampler that cannot be used on this machine or with this space."""


class UsageError(OptimizerError):
    """Command-line options that do not go together."""


class NothingToValidateError(OptimizerError):
    """A study that lacks what validation compares against (a baseline, a feasible front)."""


class NotReadyError(OptimizerError):
    """A node that cannot run real trials: the message names each node, its Python
    environment, and what is missing there (engine, model files, devices, ports)."""


class ExportError(OptimizerError):
    """A trial or format that cannot be exported as asked; the message says what to do."""


class RetuneError(OptimizerError):
    """Retune cannot re-measure or compare as asked; the message says what to do."""
