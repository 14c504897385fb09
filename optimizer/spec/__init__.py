"""The space file: pydantic models (`models`), reading and error formatting (`load`), and the
cross-checks against the model/GPU catalogue and the engine adapters (`checks`).

Modules of the optimizer import from the submodules; this package re-exports the four names
scripts and tests use most.
"""

from optimizer.errors import SpecError
from optimizer.spec.load import SEARCH_SPACES_DIR, load_spec
from optimizer.spec.models import StudySpec

__all__ = ["SEARCH_SPACES_DIR", "SpecError", "StudySpec", "load_spec"]
