"""Done-when of the workload sources: a Mooncake-format and an Azure-format trace, written by
scripts/make_traces.py at realistic sizes, replay through the simulator and through the real
load generator (against the engine emulator, a real HTTP server) with identical request lists:
the same prompts (token for token, so the same lengths and shared prefixes), the same output
lengths, the same send times; and a trace with sessions sends each turn after the previous one.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from runners.launch import EmulatorLaunch, Launched, Launcher
from runners.measure import measure
from runners.settings import RealRunSettings
from runners.sim.runner import SimRunner
from runners.types import Candidate, NodeGroup, Placement, Workload
from runners.workload import RequestSet, TokenPrompts, make_requests

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NODE = NodeGroup("h100", "H100-SXM-80GB", 8)
PLACEMENT = Placement(NODE, tuple(range(8)))
CANDIDATE = Candidate.make(
    "vllm", "0.33.0", "Qwen3-235B-A22B-Instruct-2507", "Qwen/Qwen3-235B-A22B-Instruct-2507",
    "bf16", {"tensor-parallel-size": 8},
)  # fmt: skip
VOCAB = 151_936
EMULATOR_SCALE = 4.0


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("traces")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_traces.py"), "--out", str(folder)],
        check=True,
        capture_output=True,
    )
    return folder


def digest(ids: tuple[int, ...]) -> str:
    """The emulator's digest of a token-id prompt (runners.sim.received.prompt_digest)."""
    text = json.dumps(list(ids), separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def replay_on_emulator(
    workload: Workload, tmp_path: Path
) -> tuple[list[dict[str, object]], dict[str, list[float]]]:
    """Send `workload` with the real load generator to an emulator: (what the emulator
    received, the load generator's bench.json)."""
    launcher = Launcher(
        RealRunSettings(),
        tmp_path / "cache",
        emulator=EmulatorLaunch(time_scale=EMULATOR_SCALE, startup_s=0.2),
    )
    instance = launcher.start(CANDIDATE, PLACEMENT, tmp_path / "trial")
    try:
        ready = instance.wait_ready()
        assert isinstance(ready, Launched), ready
        outcome = measure(
            ready.endpoint,
            workload,
            vocab_size=VOCAB,
            num_gpus=8,
            out_dir=tmp_path,
            timeout_s=600.0,
            num_warmups=1,  # as LocalRunner: the first request's one-time costs go there
            time_scale=EMULATOR_SCALE,
        )
        assert outcome.status == "ok", outcome.crash
        url = ready.endpoint.root_url + "/emulator/requests"
        received: list[dict[str, object]] = httpx.get(url, timeout=30.0, trust_env=False).json()
        received = received[1:]  # the warm-up request
        bench = json.loads(Path(dict(outcome.artifacts)["benchmark_json"]).read_text())
        return received, bench
    finally:
        assert instance.stop() == ""


def assert_identical(
    requests: RequestSet, received: list[dict[str, object]], bench: dict[str, list[float]]
) -> None:
    # the load generator's send log (emulated seconds, request-list order): each request was
    # due at the list's send time and none went out before it (how late is the benchmark's
    # question: scripts/bench_trace_replay.py; tests never assert wall-clock times)
    np.testing.assert_allclose(bench["intended_start_times"], requests.send_s, atol=1e-9)
    early = requests.send_s - np.array(bench["start_times"])
    assert early.max() <= 1e-6 * EMULATOR_SCALE, early
    assert bench["input_lens"] == requests.prompt_len.tolist()
    # what the server received
    prompts = TokenPrompts(requests, VOCAB, 0)
    sent = sorted(
        (digest(p.prompt_ids), p.prompt_len, p.output_len) for p in prompts
    )  # what the list says each request is
    got = sorted((str(r["digest"]), int(r["prompt_len"]), int(r["output_len"])) for r in received)  # type: ignore[call-overload]
    assert got == sent  # token for token: lengths and shared prefixes too


@pytest.mark.parametrize(
    ("dataset", "name", "window"),
    [("mooncake", "mooncake.jsonl", 9.0), ("azure", "azure.csv", 10.0)],
)
def test_a_realistic_trace_replays_identically_in_the_simulator_and_the_load_generator(
    traces: Path, tmp_path: Path, dataset: str, name: str, window: float
) -> None:
    path = traces / name
    full = sum(1 for _ in path.open()) - (dataset == "azure")
    assert full >= 20_000  # the generator's realistic size: an hour of a busy service
    workload = Workload(
        "trace", dataset, 40, path=str(path), window_start_s=600.0, window_s=window,  # type: ignore[arg-type]
        time_scale=0.5,
    )  # fmt: skip
    requests = make_requests(workload)
    simulated = SimRunner().run(CANDIDATE, workload, PLACEMENT)
    assert simulated.metrics is not None and simulated.metrics.completed == 40
    assert simulated.metrics.total_input_tokens == int(requests.prompt_len.sum())
    if dataset == "mooncake":
        assert requests.chains is not None
        shared = [requests.chains.shared_tokens(0, i) for i in range(1, requests.size)]
        assert max(shared) > 0  # the window holds requests sharing prefixes
    received, bench = replay_on_emulator(workload, tmp_path)
    assert_identical(requests, received, bench)


def test_sessions_are_replayed_turn_after_turn(tmp_path: Path) -> None:
    rows = []
    for turn in range(3):
        for session in range(6):
            rows.append(
                {"timestamp": 0.05 * (3 * turn + session), "input_tokens": 300 * (turn + 1),
                 "output_tokens": 30, "session_id": f"s{session}", "turn": turn}
            )  # fmt: skip
    rows.sort(key=lambda r: r["timestamp"])  # type: ignore[arg-type,return-value]
    path = tmp_path / "sessions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    workload = Workload("sessions", "jsonl", len(rows), path=str(path))
    requests = make_requests(workload)
    assert requests.parent is not None and requests.chains is not None
    received, _ = replay_on_emulator(workload, tmp_path)
    prompts = TokenPrompts(requests, VOCAB, 0)
    at = {str(r["digest"]): r for r in received}
    for child, parent in enumerate(requests.parent.tolist()):
        if parent < 0:
            continue
        mine, before = (
            at[digest(prompts[child].prompt_ids)],
            at[digest(prompts[parent].prompt_ids)],
        )
        assert float(mine["arrival_s"]) >= float(before["done_s"])  # type: ignore[arg-type]
        ids, previous = prompts[child].prompt_ids, prompts[parent].prompt_ids
        assert ids[: len(previous)] == previous  # the whole previous prompt, then its own
    simulated = SimRunner().run(
        Candidate.make("vllm", "0.33.0", "Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "bf16", {}),
        workload,
        PLACEMENT,
    )
    assert simulated.metrics is not None and simulated.metrics.completed == len(rows)
