"""What to try: the search. Reads a space file, runs an Optuna multi-objective study, reports.

`cli` turns a command line into a `config.StudyConfig`; `loop` runs the study (ask, suggest
with `space`, resolve, pre-flight with `feasibility`, submit to a runner, tell); `record` is the
typed trial record everything after the loop reads; `report/` renders it; `validate`
re-measures a finished study and `dashboard` serves it. `spec/` is the space file and
`errors` the package's exception tree. This package imports `runners`; `runners` never
imports it.
"""

from optimizer.quiet_interrupt import install_for_commands

__version__ = "0.1.0"

install_for_commands()  # before a command's module imports anything heavy
