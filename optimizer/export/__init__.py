"""Deployable artifacts of a study: `python -m optimizer.export STUDY` (`optimizer.export.cli`).

Place in the data flow: after a study. `plan` turns the chosen trial into a `Deployment`
(instances, devices, ports, engine files from the engine's registry entry); `node` writes the
launch script of one node and its load balancer, `kube` the Kubernetes manifests, `front` the
Pareto front as JSON and CSV; `cli` picks the trial and writes the files.
"""
