"""Fingerprint what a study does, to show that a refactoring left behaviour unchanged.

Runs `python -m optimizer.study` (the command a user types) in a scratch folder with a fixed
space file, seed and trial count, then reads the study back with Optuna and writes one JSON
line per trial: number, state, parameters, objective values, crash class and the baseline /
anchor / warm-start marks. Two fingerprints of the same space and seed taken before and after a
change must be identical (`--compare A B` says where they differ).

    python scripts/fingerprint_study.py --space qwen3-moe.yaml --n-trials 40 --out before.json
    python scripts/fingerprint_study.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

MARKS = ("baseline", "anchor", "warm_start_from", "grid")


def fingerprint(space: str, n_trials: int, seed: int, extra: list[str]) -> list[dict[str, object]]:
    """Run the study in a scratch folder and return one record per trial, in trial order."""
    with tempfile.TemporaryDirectory(prefix="fingerprint-") as tmp:
        database = Path(tmp) / "study.db"
        argv = [
            sys.executable,
            "-m",
            "optimizer.study",
            "--space",
            space,
            "--n-trials",
            str(n_trials),
            "--seed",
            str(seed),
            "--storage",
            f"sqlite:///{database}",
            "--study-name",
            "fingerprint",
            "--quiet",
            *extra,
        ]
        done = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"study failed ({done.returncode}):\n{done.stderr[-4000:]}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name="fingerprint", storage=f"sqlite:///{database}")
        rows: list[dict[str, object]] = []
        for trial in study.get_trials(deepcopy=False):
            rows.append(
                {
                    "number": trial.number,
                    "state": trial.state.name,
                    "params": {k: trial.params[k] for k in sorted(trial.params)},
                    "values": [round(v, 6) for v in trial.values] if trial.values else None,
                    "crash_class": trial.user_attrs.get("crash_class"),
                    "marks": {m: trial.user_attrs[m] for m in MARKS if m in trial.user_attrs},
                }
            )
        return rows


def compare(before: Path, after: Path) -> int:
    a = json.loads(before.read_text())
    b = json.loads(after.read_text())
    differences = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            differences += 1
            print(f"trial {left['number']}:")
            for key in left:
                if left[key] != right.get(key):
                    print(f"  {key}: {left[key]!r}\n  {' ' * len(key)}  {right.get(key)!r}")
    if len(a) != len(b):
        differences += 1
        print(f"trial counts differ: {len(a)} vs {len(b)}")
    print(f"{len(a)} trials before, {len(b)} after; {differences} differ")
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space")
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("extra", nargs="*", help="more arguments for optimizer.study (after --)")
    ns = parser.parse_args()
    if ns.compare:
        return compare(*ns.compare)
    if not ns.space or not ns.out:
        parser.error("--space and --out are needed (or --compare BEFORE AFTER)")
    rows = fingerprint(ns.space, ns.n_trials, ns.seed, ns.extra)
    ns.out.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    states: dict[str, int] = {}
    for row in rows:
        states[str(row["state"])] = states.get(str(row["state"]), 0) + 1
    print(f"{ns.space}: {len(rows)} trials {states} -> {ns.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
