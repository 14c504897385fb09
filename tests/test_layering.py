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


def test_no_shell_anywhere() -> None:
    """No `shell=True` and no os.system / os.popen in the project's code or scripts."""
    root = Path(runners.__file__).parent.parent
    offenders = []
    for folder in ("optimizer", "runners", "scripts"):
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    for keyword in node.keywords:
                        if (
                            keyword.arg == "shell"
                            and isinstance(keyword.value, ast.Constant)
                            and keyword.value.value is True
                        ):
                            offenders.append(f"{path.name}:{node.lineno} shell=True")
                    func = node.func
                    if (
                        isinstance(func, ast.Attribute)
                        and isinstance(func.value, ast.Name)
                        and func.value.id == "os"
                        and func.attr in ("system", "popen")
                    ):
                        offenders.append(f"{path.name}:{node.lineno} os.{func.attr}")
    assert offenders == []
