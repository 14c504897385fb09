"""What to try: the search. Reads a space file, runs an Optuna multi-objective study, reports.

`optimizer.study` is the command-line driver, `optimizer.spec` the space file, `optimizer.space`
the only caller of `trial.suggest_*`, `optimizer.objectives` turns metrics into objective
values, and `optimizer.report` renders the Pareto front. This package imports `runners`;
`runners` never imports it.
"""
