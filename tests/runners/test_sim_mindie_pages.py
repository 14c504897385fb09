"""MindIE's simulated KV pool counts 128-token blocks: a request holds ceil(tokens / 128) of
them (`runners.sim.pages` and the SGLang-style scheduler model MindIE's derives from), so the
pool in tokens bounds how many requests run, and a decode step costs a block only when a
request's KV crosses into a new one. Both loops (lockstep and step-by-step) are checked."""

from __future__ import annotations

import numpy as np
import pytest

from runners.sim import step_budget
from runners.sim.pages import decode_pages_k, pages_after
from runners.sim.params import fitted_calibration
from runners.sim.perf import StepModel
from runners.sim.reference import dense_config
from runners.sim.replica import ReplicaResult
from runners.sim.scheduler import SglangEngine, run_replica
from runners.workload import RequestSet

PAGE = 128


def burst(n: int, prompt: int, output: int) -> RequestSet:
    """n requests of exactly `prompt` and `output` tokens, all sent at once."""
    return RequestSet(
        request_id=np.arange(n, dtype=np.int64),
        prompt_len=np.full(n, prompt, dtype=np.int64),
        output_len=np.full(n, output, dtype=np.int64),
        send_s=np.zeros(n, dtype=np.float64),
        max_concurrency=None,
    )


def run_mindie(requests: RequestSet, pool_pages: int, lockstep: bool) -> ReplicaResult:
    config = dense_config("mindie", max_num_seqs=256)
    assert config.block_size == PAGE
    kv_tokens = pool_pages * PAGE
    model = StepModel(config, step_budget(config, kv_tokens), fitted_calibration())
    previous = SglangEngine.lockstep
    SglangEngine.lockstep = lockstep
    try:
        return run_replica(config, requests, kv_tokens, model)
    finally:
        SglangEngine.lockstep = previous


@pytest.mark.parametrize("lockstep", [True, False], ids=["lockstep", "step-by-step"])
def test_the_pool_in_tokens_bounds_concurrency(lockstep: bool) -> None:
    """A 256-token prompt holds 2 blocks, its first decode step takes a third, and 128 output
    tokens need no fourth: 3 blocks per request let all of them run at once, one block fewer
    makes one wait or be recomputed (the old accounting, a block per prompt token, ran none:
    180 blocks were less than one 256-token prompt)."""
    n = 60
    fits = run_mindie(burst(n, 256, 128), 3 * n, lockstep)
    assert (fits.max_running, fits.preemptions) == (n, 0)
    assert fits.records.success.all()
    short = run_mindie(burst(n, 256, 128), 3 * n - 1, lockstep)
    assert short.preemptions > 0 or short.max_running < n
    assert short.records.success.all()


@pytest.mark.parametrize("lockstep", [True, False], ids=["lockstep", "step-by-step"])
def test_a_page_crossing_costs_one_page(lockstep: bool) -> None:
    """Prompts of 255 tokens hold 2 blocks; a request's KV crosses into its third block at its
    second decode step and into its fourth 128 steps later, when it has produced 130 tokens
    (the prefill samples the first): with 3 blocks each, outputs of 130 tokens all run
    together, one token more does not fit."""
    n = 40
    within = run_mindie(burst(n, 255, 130), 3 * n, lockstep)
    assert (within.max_running, within.preemptions) == (n, 0)
    over = run_mindie(burst(n, 255, 131), 3 * n, lockstep)
    assert over.preemptions > 0
    assert over.records.success.all()


def test_pages_after_counts_each_request_s_pages() -> None:
    rng = np.random.default_rng(0)
    kv0 = rng.integers(0, 1000, size=37).astype(np.int64)
    ks = np.arange(0, 400, dtype=np.int64)
    for page in (1, 16, PAGE):
        want = [int(sum(-(-(int(v) + int(k)) // page) for v in kv0)) for k in ks]
        assert pages_after(kv0, ks, page).tolist() == want


def test_decode_pages_k_is_the_most_steps_that_fit() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        page = int(rng.choice([1, 8, PAGE]))
        kv0 = rng.integers(1, 600, size=int(rng.integers(1, 20))).astype(np.int64)
        held = int((-(-kv0 // page)).sum())
        free = int(rng.integers(0, 60))
        k_hi = int(rng.integers(1, 500))
        k = decode_pages_k(kv0, held, free, k_hi, page)
        fits = [j for j in range(1, k_hi + 1) if int((-(-(kv0 + j) // page)).sum()) - held <= free]
        assert k == (max(fits) if fits else 1)
