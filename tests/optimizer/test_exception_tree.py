"""The optimizer's exception tree: drawn in optimizer/errors.py, defined there and nowhere else.

Three checks keep the drawing true: every class of the drawing exists with the parent it is
drawn under (and every class of the module is drawn); no other module of optimizer/ defines an
exception class; and nothing raises a base class bare (`ServingOptimizerError`,
`OptimizerError`), which would say nothing about what went wrong.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import optimizer
from optimizer import errors
from runners.errors import ServingOptimizerError

PACKAGE = Path(optimizer.__file__).parent
BASES = ("ServingOptimizerError", "OptimizerError")
DRAWN = re.compile(r"^(?P<indent>[ |]*)(?:\+-- )?(?P<name>[A-Za-z.]*Error)\b", re.M)


def drawn_parents() -> dict[str, str]:
    """Class name -> parent name, read from the tree drawn in the module docstring."""
    assert errors.__doc__ is not None
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for match in DRAWN.finditer(errors.__doc__):
        depth = len(match.group("indent"))
        name = match.group("name").rpartition(".")[2]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_drawing_matches_the_classes() -> None:
    defined = {
        name: cls.__mro__[1].__name__
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }
    assert drawn_parents() == defined
    assert issubclass(errors.OptimizerError, ServingOptimizerError)


def test_no_exception_class_outside_errors_py() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name | ast.Attribute)
                and ast.unparse(base).rpartition(".")[2].endswith(("Error", "Exception"))
                for base in node.bases
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert offenders == []


def test_no_bare_base_class_raise() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = ast.unparse(node.exc.func).rpartition(".")[2]
                if name in BASES:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    assert offenders == []


def test_the_checks_can_fail() -> None:
    """The drawing parser sees a class drawn under the wrong parent."""
    assert drawn_parents()["ExpressionError"] == "SpecError"
    assert drawn_parents()["OptimizerError"] == "ServingOptimizerError"
