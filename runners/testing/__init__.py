"""Reusable conformance suites for the runner plug-in seam, in the manner of `optuna.testing`.

A new runner, trial pool or engine adapter is checked by subclassing the suite for its kind in
a test module and providing the factory the suite asks for; pytest then runs every contract
test against it. The project's own test suite runs them against every implementation it ships.
"""
