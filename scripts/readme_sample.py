"""Write README's sample output from a real run of the main job, so it can never go stale.

Runs ``python -m optimizer.study --space qwen3-moe.yaml --n-trials 50`` (the README's main job
with a fixed trial count, so that it is deterministic for the file's seed, on the embedded
simulator) in a scratch folder, takes an excerpt of what it prints (the opening lines, the first
trials, the first runner crash, the head of the Pareto table and the closing lines; long lines
shortened with ``...``) and writes it into README.md between the two marker lines.
tests/test_readme_sample.py fails when the committed README differs from what this produces now.

    python scripts/readme_sample.py            # rewrite README.md
    python scripts/readme_sample.py --check    # exit 1 and show the difference if stale
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMMAND = ("-m", "optimizer.study", "--space", "qwen3-moe.yaml", "--n-trials", "50")
"""The main job with a fixed trial count: without one it stops when its front converges or its
time budget is spent, and a budget in seconds depends on the machine, the excerpt would not."""
BEGIN = "<!-- sample output: written by scripts/readme_sample.py -->"
END = "<!-- end of sample output -->"
FIRST_TRIALS = 6
FRONT_POINTS = 3
WIDTH = 116


def run_main_job() -> str:
    """What the main job prints, run from an empty folder with this checkout first on the path."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    with tempfile.TemporaryDirectory(prefix="readme-sample-") as tmp:
        done = subprocess.run(
            [sys.executable, *COMMAND], cwd=tmp, env=env, capture_output=True, text=True
        )
    if done.returncode != 0:
        raise SystemExit(f"the main job failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def shorten(line: str) -> str:
    if len(line) <= WIDTH:
        return line
    cut = line[: WIDTH - 4].rsplit(" ", 1)[0]
    return f"{cut} ..."


def excerpt(output: str) -> list[str]:
    """The lines the README shows, in the order the study printed them."""
    lines = output.rstrip("\n").splitlines()
    trials = [i for i, line in enumerate(lines) if line.startswith("[")]
    shown = set(trials[:FIRST_TRIALS])
    crashes = [i for i in trials if "PRUNED" in lines[i] and "pre-flight" not in lines[i]]
    shown.update(crashes[:1])
    front = next(i for i, line in enumerate(lines) if line.startswith("Pareto front:"))
    table = next(i for i in range(front, len(lines)) if lines[i].startswith("-----"))
    closing = next(i for i, line in enumerate(lines) if line.startswith("Recommended:"))
    labelled = front - 1 if lines[front - 1].startswith("Numbers below:") else front
    out = lines[: trials[0]]  # the study line and what its numbers are
    out += [lines[i] for i in sorted(shown)]
    out += ["...", ""]
    out += lines[labelled : table + 1 + 2 * FRONT_POINTS]
    out += ["...", ""]
    out += lines[closing:]
    return [shorten(line) for line in out]


def block(output: str) -> str:
    return "\n".join([BEGIN, "```", *excerpt(output), "```", END])


def with_sample(readme: str, sample: str) -> str:
    head, found, rest = readme.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise SystemExit(f"README.md has no sample markers ({BEGIN!r} ... {END!r})")
    return head + sample + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    ns = parser.parse_args(argv)
    current = README.read_text()
    wanted = with_sample(current, block(run_main_job()))
    if ns.check:
        if wanted == current:
            print("README sample output is current")
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True), wanted.splitlines(keepends=True)
            )
        )
        print("README sample output is stale: run python scripts/readme_sample.py")
        return 1
    README.write_text(wanted)
    print(f"wrote the sample output into {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
