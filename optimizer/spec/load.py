"""Reading a space file: YAML in, a checked `StudySpec` out, or one `SpecError` naming the fix.

The edge of the system: `load_spec` finds the file (a path, or a shipped name in
search_spaces/), reads the YAML within `optimizer.spec.bounded`'s limits (duplicate keys are
errors), validates it into the pydantic
models of `optimizer.spec.models` (a workload file's path is relative to the space file) and
runs the cross-checks of `optimizer.spec.checks` (which also read the workload files). Any
problem is raised as `SpecError` with the file, the field path and what to do, before any
storage is touched.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from optimizer.errors import DuplicateKeyError, SpecError
from optimizer.spec.bounded import read_bounded
from optimizer.spec.checks import cross_check
from optimizer.spec.models import StudySpec

SEARCH_SPACES_DIR = (Path(__file__).parent.parent / "search_spaces").resolve()
"""The shipped space files: package data of `optimizer` in an installed package; in a
checkout, ``optimizer/search_spaces`` links to the repository's ``search_spaces/``."""


def resolve_space_path(name_or_path: str | Path) -> Path:
    """A path as given if it exists; a bare name like ``qwen3-moe.yaml`` from search_spaces/."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if len(path.parts) == 1:
        for candidate in (path.name, f"{path.name}.yaml"):
            shipped = SEARCH_SPACES_DIR / candidate
            if shipped.exists():
                return shipped
    shipped_names = sorted(p.name for p in SEARCH_SPACES_DIR.glob("*.yaml"))
    raise SpecError(
        f"{name_or_path}: no such space file (looked in the current directory and in "
        f"{SEARCH_SPACES_DIR}); shipped spaces: {', '.join(shipped_names) or 'none'}"
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that rejects duplicate keys instead of keeping the last value."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable keys are reported by the schema check
            if duplicate:
                mark = key_node.start_mark
                raise DuplicateKeyError(
                    f"line {mark.line + 1}, column {mark.column + 1}: {key!r} is given twice in "
                    "the same mapping; keep one (YAML would silently use the last)"
                )
        return super().construct_mapping(node, deep=deep)


def load_spec(name_or_path: str | Path, strict_versions: bool = False) -> StudySpec:
    """Read, validate and cross-check a space file; raise `SpecError` on any problem
    (`strict_versions`: an engine release outside the catalogue is one)."""
    path = resolve_space_path(name_or_path)
    try:
        raw = yaml.load(read_bounded(path), Loader=_UniqueKeyLoader)
    except DuplicateKeyError as exc:
        raise SpecError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{path}:{where}: not valid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(
            f"{path}: the file must be a YAML mapping with the sections name, model, hardware, "
            f"engines, workload, objectives and baseline; it holds {type(raw).__name__}"
        )
    try:
        spec = StudySpec.model_validate(raw, context={"space_dir": path.parent})
    except ValidationError as exc:
        raise SpecError(_format_validation(path, exc)) from None
    problems = cross_check(spec, strict_versions, path.resolve().parent)
    if problems:
        raise SpecError(f"{path}: " + "; ".join(problems))
    return spec


def _format_validation(path: Path, exc: ValidationError) -> str:
    errors = [e for e in exc.errors() if not _wrong_union_branch(e["type"], e["loc"])]
    parts = []
    for error in errors[:6]:
        loc = [str(p) for p in error["loc"] if not _is_union_tag(p)]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (remove it or check its spelling)"
        elif error["type"] == "literal_error" and "expected" in error.get("ctx", {}):
            message = f"must be {error['ctx']['expected']}"
        if loc and loc[-1] == "[key]":
            loc.pop()
            message = f"not a valid key: {message}"
        if error["type"] == "value_error":
            # a section's own check names the field: "path: ..." -> "workload.path: ..."
            message = message.removeprefix("Value error, ")
            field, colon, rest = message.partition(": ")
            if colon and field.replace("_", "").replace(".", "").isalnum():
                loc.append(field)
                message = rest
        parts.append(f"{'.'.join(loc) or '(top level)'}: {message}")
    more = len(errors) - 6
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{path}: " + "; ".join(parts) + suffix


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and (
        part in ("int", "float", "categorical", "bool") or part.startswith(("list[", "tagged-"))
    )


def _wrong_union_branch(error_type: str, loc: tuple[int | str, ...]) -> bool:
    """Errors from the branch of `setting: spec | [spec, ...]` that the input did not take."""
    return error_type in ("list_type", "model_attributes_type") and any(
        _is_union_tag(p) for p in loc
    )
