"""The space file: pydantic models (`models`), reading and error formatting (`load`), and the
cross-checks against the model/GPU catalogue and the engine adapters (`checks`).

Import from the submodules. This file re-exports nothing on purpose: importing
`optimizer.spec.models` runs it first, and a re-export of `load` would pull the cross-checks
(and through them the constraints that import the models) into that import.
"""
