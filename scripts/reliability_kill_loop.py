"""The full kill loop of the reliability suite: 10 interruptions of the driver per storage.

    python scripts/reliability_kill_loop.py [--kills 10] [--trials 30] [--seed 0]

On SQLite and on a throwaway PostgreSQL server (tests/pg_cluster.py), a slowed driver is
interrupted at seeded random points and rerun each time, then the real CLI finishes
the study. Each interruption is SIGKILL, SIGTERM or SIGINT, chosen at random. Prints, per
storage, the interruptions survived by signal, the interrupted trials (each must end FAIL
and be retried), the COMPLETE trials recorded after each kill and lost since (must be 0), and
duplicates (must be 0). Exit status 1 if any check fails. `tests/reliability/test_kill_loop.py`
runs the same loop with 3 kills in the default suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pg_cluster import pg_cluster  # noqa: E402
from tests.reliability.kill_loop import check, kill_loop  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args()
    status = 0
    with tempfile.TemporaryDirectory() as work, pg_cluster() as postgres:
        folder = Path(work)
        for label, storage in (
            ("SQLite", f"sqlite:///{folder / 'loop.db'}"),
            ("PostgreSQL", postgres),
        ):
            result = kill_loop(folder, storage, "loop", ns.trials, ns.kills, ns.seed)
            try:
                check(result, ns.kills)
                verdict = "OK"
            except AssertionError as exc:
                verdict, status = f"FAILED: {str(exc).splitlines()[0]}", 1
            print(f"{label}: {result.summary()}; {verdict}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
