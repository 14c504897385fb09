"""`python -m optimizer.report STUDY` (see `optimizer.report.cli`)."""

from optimizer.report.cli import main

raise SystemExit(main())
