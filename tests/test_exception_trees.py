"""One exception tree per package, in one file, drawn in its docstring and kept true here.

For each package listed: (a) no module but ``<package>/errors.py`` defines an exception class
(at any nesting level), (b) the tree drawn in that module's docstring is exactly the class
hierarchy of the exceptions it defines, and (c) nothing in the package raises the bare root
class ``ServingOptimizerError`` (or the package's own root, e.g. ``OptimizerError``): a raise
names the specific class a caller can catch.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

import pytest

import runners

ROOT = Path(runners.__file__).resolve().parents[1]
PACKAGES = ["runners", "optimizer"]
ROOT_CLASS = "ServingOptimizerError"
TREE_LINE = re.compile(r"^(?P<lead>[\s|]*(?:\+-- )?)(?:[a-z_]+\.)*(?P<name>[A-Z]\w*)\b")
BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}


def errors_module(package: str) -> object:
    return importlib.import_module(f"{package}.errors")


def defined_exceptions(package: str) -> dict[str, type[BaseException]]:
    """Exception classes defined in `<package>.errors` (not imported into it)."""
    module = errors_module(package)
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__  # type: ignore[attr-defined]
    }


def drawn_tree(docstring: str) -> dict[str, str | None]:
    """Class name -> parent name, read from the drawing that starts at the root class.

    The drawing is the block of lines from the one naming the root class to the next blank
    line; a class's parent is the nearest line above it whose name starts further left.
    """
    lines = docstring.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.strip().rpartition(".")[2].startswith(ROOT_CLASS)
    )
    tree: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column of the name, name)
    for line in lines[start:]:
        if not line.strip():
            break
        match = TREE_LINE.match(line)
        assert match, f"not a line of the tree drawing: {line!r}"
        column, name = len(match.group("lead")), match.group("name")
        while stack and stack[-1][0] >= column:
            stack.pop()
        assert name not in tree, f"{name} is drawn twice"
        tree[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return tree


def exception_class_definitions(package: str) -> list[str]:
    """`path:line Name` of every class in the package deriving (by name) from an exception.

    Exception names are the builtins', the errors module's, and (to a fixpoint) any class found
    deriving from one of them; a base is matched by its last dotted part, and a base whose name
    ends in Error or Exception (``httpx.HTTPError``, ``yaml.YAMLError``) counts as one too.
    """
    known = set(BUILTIN_EXCEPTIONS) | set(defined_exceptions(package))
    classes: list[tuple[Path, ast.ClassDef]] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        classes.extend((path, node) for node in ast.walk(tree) if isinstance(node, ast.ClassDef))

    def base_names(node: ast.ClassDef) -> list[str]:
        names = []
        for base in node.bases:
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Attribute):
                names.append(base.attr)
            elif isinstance(base, ast.Name):
                names.append(base.id)
        return names

    found: dict[tuple[Path, int], str] = {}
    changed = True
    while changed:
        changed = False
        for path, node in classes:
            if (path, node.lineno) in found:
                continue
            if any(n in known or n.endswith(("Error", "Exception")) for n in base_names(node)):
                found[(path, node.lineno)] = node.name
                known.add(node.name)
                changed = True
    return [f"{path.relative_to(ROOT)}:{line} {name}" for (path, line), name in found.items()]


@pytest.mark.parametrize("package", PACKAGES)
def test_only_the_errors_module_defines_exceptions(package: str) -> None:
    errors_file = f"{package}/errors.py:"
    elsewhere = [d for d in exception_class_definitions(package) if not d.startswith(errors_file)]
    assert elsewhere == [], f"move these into {package}/errors.py"


@pytest.mark.parametrize("package", PACKAGES)
def test_the_drawn_tree_is_the_class_hierarchy(package: str) -> None:
    module = errors_module(package)
    docstring = module.__doc__ or ""
    classes = defined_exceptions(package)
    real: dict[str, str | None] = {}
    for name, cls in classes.items():
        parents = [b.__name__ for b in cls.__bases__ if b.__name__ in classes]
        assert len(parents) <= 1, f"{name} has several parents in the tree: {parents}"
        # a package whose own root derives from another package's (optimizer -> runners) draws
        # that root, by its dotted name, at the top of its tree
        outside = [b.__name__ for b in cls.__bases__ if b.__name__ == ROOT_CLASS]
        real[name] = parents[0] if parents else (outside[0] if outside else None)
    if ROOT_CLASS not in classes and any(parent == ROOT_CLASS for parent in real.values()):
        real[ROOT_CLASS] = None
    assert drawn_tree(docstring) == real


def package_roots(package: str) -> set[str]:
    """The root class, and a package's own root under it (a class of errors.py directly below
    the root that other classes derive from, e.g. optimizer's OptimizerError)."""
    classes = defined_exceptions(package)
    roots = {ROOT_CLASS}
    for name, cls in classes.items():
        has_children = any(cls in other.__bases__ for other in classes.values())
        if has_children and any(b.__name__ == ROOT_CLASS for b in cls.__bases__):
            roots.add(name)
    return roots


@pytest.mark.parametrize("package", PACKAGES)
def test_no_raise_of_the_bare_root_class(package: str) -> None:
    roots = package_roots(package)
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = target.attr if isinstance(target, ast.Attribute) else None
            if isinstance(target, ast.Name):
                name = target.id
            if name in roots:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} raises {name}")
    assert offenders == [], f"raise a specific subclass of {sorted(roots)}"


def test_the_tree_reader_sees_nesting_and_mistakes() -> None:
    """The checks above can fail: the reader nests by column and a wrong drawing differs."""
    drawing = (
        "Errors.\n\n    ServingOptimizerError  root\n     +-- A  a\n     |    +-- B  b\n"
        "     +-- C  c\n\nmore text\n"
    )
    assert drawn_tree(drawing) == {
        "ServingOptimizerError": None,
        "A": "ServingOptimizerError",
        "B": "A",
        "C": "ServingOptimizerError",
    }
