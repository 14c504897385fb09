"""`python -m optimizer.study --space X.yaml`, also run as `serving-optimizer study`.

A thin entry: `optimizer.cli` turns the arguments into a `StudyConfig` and runs
`optimizer.loop.run_study`. Scripts and tests call `run_study` with a `StudyConfig` directly.
"""

from optimizer.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
