"""Hostile input: a fuzz of the space loader, and storage errors that must leave nothing behind.

Already covered in tests/optimizer/test_hostile_input.py (messages, exit status 2, the password
redacted): an unknown storage scheme, an unreachable PostgreSQL, a corrupt SQLite file (left
byte for byte), a studies folder that cannot be created, and the same study name with a
different space (refused unless --allow-space-change). Added here: that each writes nothing
(no folder, no database, no trial), and a read-only studies folder (not testable as root, who
ignores permission bits: skipped there with that reason).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.errors import SpecError
from optimizer.spec.load import load_spec
from tests.optimizer.test_hostile_input import cli
from tests.optimizer.test_spec_fuzz import PATHS, SHIPPED, mutated, values

pytestmark = pytest.mark.reliability

FUZZ_EXAMPLES = 500


texts = st.one_of(
    st.builds(mutated, st.sampled_from(PATHS), values, st.booleans()),
    st.text(max_size=300),
    st.dictionaries(st.sampled_from(list(SHIPPED)), values, max_size=8).map(yaml.safe_dump),
    st.sampled_from(
        [
            "a: &a [*a]\n",  # a recursive alias
            "x: " + "[" * 200 + "]" * 200 + "\n",  # deep nesting
            "!!python/object/apply:os.system ['true']\n",  # code execution tag
            "- &a [x]\n- &b [*a, *a, *a, *a]\n- &c [*b, *b, *b, *b]\n- [*c, *c, *c, *c]\n",
            "\ufeffname: x\n",
            "name: x\n\x00\n",
            "%YAML 9.9\n---\nname: x\n",
            "",
            "---\n---\n",
        ]
    ),
)


@pytest.mark.slow
def test_fuzz_the_space_loader(tmp_path: Path) -> None:
    """At least FUZZ_EXAMPLES files: `load_spec` returns or raises `SpecError`, nothing else."""
    cases = [0]
    target = tmp_path / "fuzz.yaml"

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(text=texts | st.binary(max_size=200))
    def load(text: str | bytes) -> None:
        cases[0] += 1
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_spec(target)
        except SpecError as exc:
            assert str(exc).startswith(str(target))

    load()
    print(f"load_spec fuzz: {cases[0]} cases, no exception but SpecError")
    assert cases[0] >= 500


def contents(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.mark.parametrize(
    "storage",
    ["mongodb://x/y", "postgresql://ann:pw@127.0.0.1:1/x"],
    ids=["unknown-scheme", "unreachable-postgresql"],
)
def test_bad_storage_writes_nothing(tmp_path: Path, storage: str) -> None:
    before = contents(tmp_path)
    result = cli(tmp_path, "--space", "qwen3-moe.yaml", "--n-trials", "2", "--storage", storage)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert contents(tmp_path) == before


def test_a_refused_space_change_leaves_the_study_as_it_was(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    first = cli(tmp_path, "--space", "qwen3-moe.yaml", "--n-trials", "2", "--storage", db)
    assert first.returncode == 0, first.stderr
    before = optuna.load_study(study_name="qwen3-moe", storage=db)
    trials, attrs = len(before.trials), dict(before.user_attrs)
    changed = copy.deepcopy(SHIPPED)
    changed["workload"]["num_prompts"] = 500
    space = tmp_path / "changed.yaml"
    space.write_text(yaml.safe_dump(changed, sort_keys=False))
    refused = cli(tmp_path, "--space", str(space), "--study-name", "qwen3-moe", "--n-trials",
                  "4", "--storage", db)  # fmt: skip
    assert refused.returncode == 2
    after = optuna.load_study(study_name="qwen3-moe", storage=db)
    assert (len(after.trials), dict(after.user_attrs)) == (trials, attrs)


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root ignores permission bits: a read-only folder is not read-only"
)
def test_read_only_studies_folder(tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    studies.chmod(0o555)
    try:
        result = cli(tmp_path, "--space", "qwen3-moe.yaml", "--n-trials", "2")
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert list(studies.iterdir()) == []
    finally:
        studies.chmod(0o755)
