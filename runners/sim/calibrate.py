"""`python -m runners.sim.calibrate --runs RUNS --out calibration.yaml`: calibrate on your runs.

Place in the data flow: reads measured runs (`runners.sim.calibrate_runs.read_runs`: a CSV in
the replay schema, or a folder of `vllm bench serve --save-result` JSON files with their serve
commands), fits per-engine corrections (`runners.sim.fit.fit_calibration`) and writes the
calibration file (`runners.sim.calibration_file`) that replay, the space file and validate
read. Bad input is one line naming the file and the row, exit status 2, and nothing written. A
poor fit is written with ``quality: poor`` and said on the console; its readers refuse it unless
told to accept it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from runners.catalog.resolve import MODELS_DIR_ENV
from runners.errors import ServingOptimizerError
from runners.sim.calibrate_runs import input_sha256, read_runs
from runners.sim.calibration_file import calibration_document, write_calibration
from runners.sim.fit import FACTORS, fit_calibration, gpus_by_engine


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runners.sim.calibrate",
        description="Fit the simulator's per-engine corrections to your measured runs.",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        required=True,
        help="a CSV of runs in the replay schema, or a folder of vllm bench serve "
        "--save-result JSON files (each with its serve command: docs/calibration.md)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the calibration YAML to write")
    parser.add_argument("--model", help="refuse runs of any other model")
    parser.add_argument(
        "--models-dir",
        type=Path,
        help=f"folder of config.json files for models outside the catalogue (default: "
        f"${MODELS_DIR_ENV})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.out.exists() and args.out.is_dir():
            print(f"error: --out {args.out} is a folder; give a file name", file=sys.stderr)
            return 2
        observations = read_runs(args.runs, args.model, args.models_dir)
        fit = fit_calibration(observations)
        gpus = gpus_by_engine(observations)
        document = calibration_document(
            fit,
            gpus,
            [o.label for o in observations],
            str(args.runs),
            input_sha256(args.runs),
            args.model,
        )
        write_calibration(args.out, document)
    except ServingOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {args.out}: cannot be written: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {fit.note}")
    for engine in gpus:
        parts = []
        for factor in FACTORS:
            value, sigma = fit.corrections[f"{engine}.{factor}"]
            parts.append(f"{factor} {value:.3f} (+/-{100 * sigma:.0f}%)")
        print(f"  {engine}: " + ", ".join(parts))
    for metric, median in fit.error.items():
        print(
            f"  error {metric}: median {100 * median:.1f}%, max {100 * fit.max_error[metric]:.1f}%"
        )
    if fit.poor:
        print(
            "warning: the fit is poor; replay and studies refuse this file unless told to "
            "accept it (--accept-poor-fit, accept_poor_fit: true)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
