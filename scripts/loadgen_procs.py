"""The processes of scripts/bench_loadgen.py: each client run and the servers, in process groups.

Where it sits: between bench_loadgen.py's two questions (capacity, agreement) and the
processes they measure. A client run is ``bench_loadgen.py --client-run`` (ours) or `vllm
bench serve` through `runners.vllm_entry`, pinned to `CLIENT_CORE`; each writes
``<workdir>/<tag>.json``. Every process is its own process group, stopped by SIGTERM and then
SIGKILL of that group only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_loadgen.py"  # (its --client-run and --serve modes)
CLIENT_CORE = "0"
SERVER_CORE = "1"


@contextlib.contextmanager
def group(
    argv: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` as its own process group; always SIGTERM, then SIGKILL, that group only."""
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            list(argv),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_http(url: str, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < end:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {deadline_s:g} s")


def pinned(core: str, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if os.cpu_count() and os.cpu_count() != 1 else [*argv]


@dataclass(frozen=True)
class ClientRun:
    """What one client run sends and where: its server, requests, workdir and tokenizer."""

    port: int
    rate: float
    count: int
    input_len: int
    output_len: int
    workdir: Path
    tokenizer: Path
    model: str


def run_client(
    tool: str, run: ClientRun, core: str | None, tag: str, max_concurrency: int | None = None
) -> dict[str, object]:
    """Run one benchmark with `tool` ("ours" or "vllm") and return its result document."""
    argv = client_argv(tool, run, tag, max_concurrency)
    if core is not None:
        argv = pinned(core, argv)
    log = run.workdir / f"{tag}.log"
    with group(argv, log, CLIENT_ENV) as proc, contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=900)
    return read_result(tool, run.workdir, tag)


CLIENT_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


def read_result(tool: str, workdir: Path, tag: str) -> dict[str, object]:
    out = workdir / f"{tag}.json"
    if not out.exists():
        tail = (workdir / f"{tag}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{tool} wrote no result:\n{tail}")
    document: dict[str, object] = json.loads(out.read_text())
    return document


def client_argv(
    tool: str, run: ClientRun, tag: str, max_concurrency: int | None = None, go_file: str = ""
) -> list[str]:
    """The command of one benchmark run of `tool`, writing ``workdir/<tag>.json``."""
    port, rate, count, model = run.port, run.rate, run.count, run.model
    input_len, output_len = run.input_len, run.output_len
    workdir, tokenizer = run.workdir, run.tokenizer
    out = workdir / f"{tag}.json"
    out.unlink(missing_ok=True)
    base = f"http://127.0.0.1:{port}"
    if tool == "ours":
        vocab = int(json.loads((tokenizer / "config.json").read_text())["vocab_size"])
        argv = [
            sys.executable,
            str(SCRIPT),
            "--client-run",
            f"{base}/v1",
            f"{rate}",
            str(count),
            str(input_len),
            str(output_len),
            str(out),
            model,
            str(vocab),
            str(max_concurrency or 0),
            go_file or "-",
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "runners.vllm_entry",
            "bench",
            "serve",
            "--backend",
            "openai",
            "--base-url",
            base,
            "--endpoint",
            "/v1/completions",
            "--model",
            model,
            "--tokenizer",
            str(tokenizer),
            "--dataset-name",
            "random",
            "--random-input-len",
            str(input_len),
            "--random-output-len",
            str(output_len),
            "--random-range-ratio",
            "0",
            "--ignore-eos",
            "--num-prompts",
            str(count),
            "--request-rate",
            "inf" if math.isinf(rate) else f"{rate}",
            "--burstiness",
            "inf",
            "--num-warmups",
            "1",
            "--disable-tqdm",
            "--save-result",
            "--save-detailed",
            "--result-dir",
            str(workdir),
            "--result-filename",
            out.name,
            "--percentile-metrics",
            "ttft,tpot,itl,e2el",
            "--metric-percentiles",
            "50,90,95,99",
            "--seed",
            "0",
        ]
        if max_concurrency:
            argv += ["--max-concurrency", str(max_concurrency)]
    return argv


@dataclass(frozen=True)
class RealWorkload:
    """One identical workload both tools send to the real engine (per tool, per repeat)."""

    port: int
    count: int
    input_len: int
    output_len: int
    workdir: Path
    model_dir: Path
    max_concurrency: int

    def client_run(self) -> ClientRun:
        """One tool's run of it (all at once: rate inf)."""
        model = str(self.model_dir.resolve())
        return ClientRun(
            self.port,
            math.inf,
            self.count,
            self.input_len,
            self.output_len,
            self.workdir,
            self.model_dir,
            model,
        )


def run_together(real: RealWorkload, tag: str) -> dict[str, dict[str, object]]:
    """Both clients at once against one server, their measured runs started together.

    Ours warms up and waits for a go file; `vllm bench serve` starts, and the file is created
    the moment it prints ``Starting main benchmark run``. Both then see the same engine at the
    same time, so machine noise (other users of these 2 cores) hits both alike.
    """
    workdir = real.workdir
    go = workdir / f"{tag}.go"
    go.unlink(missing_ok=True)
    run = real.client_run()
    ours = client_argv("ours", run, f"{tag}-ours", real.max_concurrency, str(go))
    theirs = client_argv("vllm", run, f"{tag}-vllm", real.max_concurrency)
    log = workdir / f"{tag}-vllm.log"
    with (
        group(pinned(CLIENT_CORE, ours), workdir / f"{tag}-ours.log", CLIENT_ENV) as first,
        group(pinned(CLIENT_CORE, theirs), log, CLIENT_ENV) as second,
    ):
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and second.poll() is None:
            if "Starting main benchmark run" in log.read_text(errors="replace"):
                go.touch()
                break
            time.sleep(0.001)
        go.touch()
        for proc in (second, first):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=900)
    return {
        "vllm": read_result("vllm", workdir, f"{tag}-vllm"),
        "ours": read_result("ours", workdir, f"{tag}-ours"),
    }


def run_in_turn(real: RealWorkload, tag: str, vllm_first: bool) -> dict[str, dict[str, object]]:
    """One client after the other against the engine, each alone on it (the default).

    Each tool sees the engine exactly as a user running it alone would; the caller alternates
    which goes first so a drift of the machine's load between the two halves cancels out.
    """
    order = ("vllm", "ours") if vllm_first else ("ours", "vllm")
    return {
        tool: run_client(
            tool, real.client_run(), CLIENT_CORE, f"{tag}-{tool}", real.max_concurrency
        )
        for tool in order
    }
