"""`python -m optimizer.export STUDY`: see `optimizer.export.cli`."""

from optimizer.export.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
