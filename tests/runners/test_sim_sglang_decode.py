"""SGLang's decode stretches (`runners.sim.sglang_decode`): the one-loop pricing and delivery of
a short stretch of a `Plain` model gives the values of `StepModel.decode_ends` and
`OutputStream`'s, and the lean finish of a request writes back what its release reads (a
planted error there is caught by the comparison with the step-by-step loop)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from runners.sim.decode_scalar import is_plain
from runners.sim.frontend import OutputStream
from runners.sim.lockstep_sglang import SglangLockstep
from runners.sim.perf import StepModel
from runners.sim.reference import dense_config
from runners.sim.scheduler import SglangEngine
from runners.sim.sglang_decode import SglangDecode
from runners.types import ServingConfig, Workload
from tests.runners.lockstep_cases import LONG_OUT, assert_same, run_loop


def sglang(**overrides: object) -> ServingConfig:
    return dense_config("sglang", **overrides)


def stretch_state(model: StepModel, token_s: float, free_s: float, pending: int) -> Any:
    """What `_plain` and `_priced` read and write of an `SglangDecode`."""
    stream = OutputStream(1.0, token_s)
    stream.free_s = free_s
    eng = SimpleNamespace(model=model, stream=stream, now=10.0)
    state = SimpleNamespace(
        eng=eng, kv_sum=5000, n_pending=pending, pending={9.5: pending} if pending else {},
        d_last=9.0, gaps=[], counts=[],
    )  # fmt: skip
    state._first_gaps = lambda d, n: SglangDecode._first_gaps(state, d, n)  # type: ignore[arg-type]
    return state


@pytest.mark.parametrize("k", [1, 2, 17, 64])
@pytest.mark.python_loops
@pytest.mark.parametrize(
    ("token_s", "free_s", "pending"),
    [(1e-5, 0.0, 0), (1e-5, 0.0, 2), (5e-3, 10.5, 0)],  # the last: the server is the bottleneck
    ids=["gpu-bound", "joined", "server-bound"],
)
def test_a_plain_stretch_is_decode_ends_delivered(
    k: int, token_s: float, free_s: float, pending: int
) -> None:
    model = StepModel(sglang(), 16384)
    assert is_plain(model)
    n = 24
    plain = stretch_state(model, token_s, free_s, pending)
    priced = stretch_state(model, token_s, free_s, pending)
    d = SglangDecode._plain(plain, n, k, {})
    assert d == SglangDecode._priced(priced, n, k, None)
    assert plain.eng.now == priced.eng.now
    assert plain.eng.stream.free_s == priced.eng.stream.free_s == d
    assert plain.gaps == priced.gaps and plain.counts == priced.counts
    assert len(plain.gaps) == k + (1 if pending else 0) and sum(plain.counts) == n * k


@pytest.mark.parametrize(
    "config",
    [sglang(cuda_graphs=False), sglang(async_scheduling=False),
     sglang(spec_method="eagle3", spec_tokens=3)],
    ids=["eager", "sync", "spec"],
)  # fmt: skip
def test_only_the_common_case_is_plain(config: ServingConfig) -> None:
    assert is_plain(StepModel(sglang(), 16384))
    assert not is_plain(StepModel(config, 16384))


def run(config: ServingConfig, workload: Workload, lockstep: bool) -> Any:
    return run_loop(SglangEngine, config, workload, lockstep)


@pytest.mark.python_loops
def test_a_planted_finish_error_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished request's pages (which its release frees) counted one short: the small
    pool then admits and retracts differently."""
    original = SglangLockstep._end

    def short(self: SglangLockstep, rid: int) -> int:
        return original(self, rid) - 1

    monkeypatch.setattr(SglangLockstep, "_end", short)
    config = sglang(mem_fraction=0.5)
    with pytest.raises(AssertionError):
        assert_same(run(config, LONG_OUT, lockstep=True), run(config, LONG_OUT, lockstep=False))
