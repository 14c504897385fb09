"""The dependency rule: runners never imports optuna or optimizer."""

from __future__ import annotations

import ast
from pathlib import Path

import runners

FORBIDDEN = ("optuna", "optimizer")


def test_runners_do_not_import_the_search() -> None:
    root = Path(runners.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(root.parent)}:{node.lineno} {name}")
    assert offenders == []
