"""Fingerprint what `runners.sim.simulate` returns over a fixed set of cases, to show that a
speed-up of the simulator left its outputs unchanged.

Each case (vLLM, SGLang, TensorRT-LLM and MindIE schedulers; shared prefixes, multi-turn
sessions, a concurrency limit, noise on; Azure- and Mooncake-format traces written by
scripts/make_traces.py) is simulated once and its per-request records, ITL values and step
counts are saved to one .npz file. `--compare A B` checks two fingerprints: counts exactly,
float arrays to a relative tolerance (default 1e-9, floating-point last-bit noise); the pooled
ITL values as a sorted list, since their order carries no meaning.

    python scripts/fingerprint_sim.py --out /tmp/before.npz
    python scripts/fingerprint_sim.py --compare /tmp/before.npz /tmp/after.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_traces import write_azure, write_mooncake  # noqa: E402

from runners.sim import Noise, simulate  # noqa: E402
from runners.sim.reference import dense_config, reference_config  # noqa: E402
from runners.types import ServingConfig, Workload  # noqa: E402

FIELDS = ("prompt_len", "output_len", "success", "start_s", "ttft_s", "e2el_s", "itl_s")


def cases(tmp: Path) -> dict[str, tuple[ServingConfig, Workload, Noise | None]]:
    share = Workload("sharegpt", "sharegpt-like", 400, seed=3)
    rated = dataclasses.replace(share, request_rate=12.0)
    prefix = Workload("prefix", "random", 300, 2000, 200, request_rate=8.0, seed=1,
                      prefix_len=1500, prefix_groups=4)  # fmt: skip
    turns = Workload("turns", "sharegpt-like", 240, seed=2, turns=3, max_concurrency=16)
    closed = dataclasses.replace(share, max_concurrency=32)
    azure = write_azure(tmp / "azure.csv", 3000, 3000 / 6.5, 0, "conversation")
    mooncake = write_mooncake(tmp / "mooncake.jsonl", 3000, 3000 / 6.5, 0)
    az = Workload("azure", "azure", 3000, path=str(azure))
    mc = Workload("mooncake", "mooncake", 3000, path=str(mooncake))
    mc_fast = dataclasses.replace(mc, time_scale=0.1)
    ref = reference_config()
    tight = dataclasses.replace(ref, mem_fraction=0.8, max_model_len=32768)
    long_out = Workload("long-out", "random", 400, 1500, 800, seed=3)
    tp4 = dataclasses.replace(ref, tensor_parallel=4, data_parallel=2)
    out: dict[str, tuple[ServingConfig, Workload, Noise | None]] = {
        "vllm ref sharegpt burst": (ref, share, None),
        "vllm ref sharegpt rate": (ref, rated, None),
        "vllm ref prefix no-cache": (dataclasses.replace(ref, prefix_caching=False), prefix, None),
        "vllm ref prefix": (ref, prefix, None),
        "vllm ref turns": (ref, turns, None),
        "vllm ref closed noise": (ref, closed, Noise.typical()),
        "vllm ref tight kv": (tight, long_out, None),
        "vllm ref azure": (ref, az, None),
        "vllm ref mooncake": (ref, mc, None),
        "vllm ref mooncake x10 noise": (ref, mc_fast, Noise.typical()),
        "vllm tp4 dp2 azure": (tp4, az, None),
        "vllm dense sharegpt": (dense_config("vllm"), share, None),
        "vllm dense small-kv": (dense_config("vllm", mem_fraction=0.45), rated, None),
        "sglang sharegpt": (dense_config("sglang"), share, None),
        "sglang prefix": (dense_config("sglang"), prefix, None),
        "sglang turns noise": (dense_config("sglang"), turns, Noise.typical()),
        "sglang mooncake": (dense_config("sglang"), mc_fast, None),
        "trtllm sharegpt": (dense_config("trtllm"), share, None),
        "trtllm maxutil": (dense_config("trtllm", capacity_policy="max_utilization"), rated, None),
        "mindie sharegpt": (dense_config("mindie"), share, None),
        "mindie azure": (dense_config("mindie"), az, None),
    }
    return out


def take(out_path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="fingerprint-sim-") as tmp:
        for label, (config, workload, noise) in cases(Path(tmp)).items():
            result = simulate(config, workload, seed=7, noise=noise)
            counts = [result.steps, result.preemptions, result.max_running, result.kv_cache_tokens]
            arrays[f"{label}|counts"] = np.array(counts, dtype=np.int64)
            if result.crash is not None:
                print(f"{label}: crashed {result.crash.crash_class}")
                continue
            assert result.records is not None
            for name in FIELDS:
                arrays[f"{label}|{name}"] = np.asarray(getattr(result.records, name))
            arrays[f"{label}|itl_s"] = result.records.itl_gaps()  # counted values expanded
            arrays[f"{label}|duration_s"] = np.array([result.records.duration_s])
            print(f"{label}: steps {counts[0]}, preemptions {counts[1]}, max running {counts[2]}")
    np.savez_compressed(out_path, **arrays)  # type: ignore[arg-type]


def compare(a_path: Path, b_path: Path, rtol: float) -> int:
    a, b = np.load(a_path), np.load(b_path)
    bad = 0
    if set(a.files) != set(b.files):
        print(f"different keys: {sorted(set(a.files) ^ set(b.files))}")
        return 1
    worst = 0.0
    for key in sorted(a.files):
        x, y = a[key], b[key]
        if key.endswith("|itl_s"):  # pooled over requests: its order carries no meaning
            x, y = np.sort(x), np.sort(y)
        if x.shape != y.shape:
            print(f"{key}: shape {x.shape} vs {y.shape}")
            bad += 1
        elif x.dtype.kind != "f":
            if not np.array_equal(x, y):
                print(f"{key}: differs")
                bad += 1
        else:
            both = np.isnan(x) & np.isnan(y)
            scale = np.maximum(np.abs(x), np.abs(y))
            rel = np.where(
                both | (scale == 0), 0.0, np.abs(x - y) / np.where(scale == 0, 1, scale)
            )
            worst = max(worst, float(rel.max(initial=0.0)))
            if float(rel.max(initial=0.0)) > rtol or not np.array_equal(np.isnan(x), np.isnan(y)):
                print(f"{key}: max relative difference {float(rel.max(initial=0.0)):.3g}")
                bad += 1
    print(f"{len(a.files)} arrays compared, {bad} differ; worst relative difference {worst:.3g}")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, nargs=2)
    parser.add_argument("--rtol", type=float, default=1e-9)
    args = parser.parse_args()
    if args.compare:
        return compare(args.compare[0], args.compare[1], args.rtol)
    if args.out is None:
        parser.error("give --out or --compare")
    take(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
