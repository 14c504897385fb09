"""docs/space-language.md documents every field the loader accepts, with its allowed values.

The field reference table of the doc is compared with the pydantic models of the space file:
a field added to a model without a row fails here (and a row for a field that no longer
exists too), and so does a value of a closed set (a sampler, a dataset, a metric) that its row
does not name.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from optimizer.spec.models import StudySpec

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "space-language.md"
KEYS = {"engines": "<engine>", "settings": "<setting>"}
ROW = re.compile(r"^\| `(?P<field>[^`]+)` \|(?P<rest>.*)$")


def leaves(annotation: object) -> list[object]:
    """The types a (possibly nested) union, Annotated or list annotation is made of."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated, list):
        return [leaf for arg in typing.get_args(annotation) for leaf in leaves(arg)]
    return [annotation]


def model_fields(annotation: object, prefix: str = "", key: str = "") -> dict[str, set[str]]:
    """Dotted field path -> the values of a closed set (Literal), empty when open."""
    found: dict[str, set[str]] = {}
    for leaf in leaves(annotation):
        if isinstance(leaf, type) and issubclass(leaf, BaseModel):
            for name, info in leaf.model_fields.items():
                path = f"{prefix}.{name}" if prefix else name
                found.setdefault(path, set()).update(literals(info.annotation))
                for sub, values in model_fields(info.annotation, path, name).items():
                    found.setdefault(sub, set()).update(values)
        elif typing.get_origin(leaf) is dict:
            value_type = typing.get_args(leaf)[1]
            if any(isinstance(v, type) and issubclass(v, BaseModel) for v in leaves(value_type)):
                inner = f"{prefix}.{KEYS.get(key, '<key>')}"
                for sub, values in model_fields(value_type, inner, key).items():
                    found.setdefault(sub, set()).update(values)
    return found


def literals(annotation: object) -> set[str]:
    values: set[str] = set()
    for leaf in leaves(annotation):
        if typing.get_origin(leaf) is typing.Literal:
            values.update(str(v) for v in typing.get_args(leaf))
    return values


def documented() -> dict[str, str]:
    """Field path -> the rest of its row, from the doc's field reference table."""
    text = DOC.read_text()
    section = text.split("## Field reference", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group("field")] = match.group("rest")
    return rows


def test_every_field_is_documented_and_every_documented_field_exists() -> None:
    fields = model_fields(StudySpec)
    rows = documented()
    # engine names key the `engines` mapping: their row is the `<engine>` placeholder
    fields["engines.<engine>"] = literals(StudySpec.model_fields["engines"].annotation)
    assert sorted(set(fields) - set(rows)) == [], "fields without a row in the doc"
    assert sorted(set(rows) - set(fields)) == [], "rows for fields the loader does not accept"


def test_every_value_of_a_closed_set_is_named() -> None:
    rows = documented()
    missing = {
        field: sorted(v for v in values if f"`{v}`" not in rows.get(field, ""))
        for field, values in model_fields(StudySpec).items()
    }
    assert {f: v for f, v in missing.items() if v} == {}


def test_the_walk_sees_nested_fields() -> None:
    fields = model_fields(StudySpec)
    assert fields["search.sampler"] == {"tpe", "nsga2", "gp", "random", "grid"}
    assert "objectives.slos.max" in fields
    assert "validation.workloads.request_rate" in fields
    assert fields["engines.<engine>.settings.<setting>.type"] == {
        "int",
        "float",
        "categorical",
        "bool",
    }
