"""Decode steps of one batch size priced in scalar Python, the lockstep loops' short stretches.

Place in the data flow: `perf.StepModel.decode_ends` (called by the vLLM and SGLang lockstep
loops for decode stretches of a few dozen steps) is `decode_ends` here; `SglangDecode._plain`
takes a stretch's constants from `plain_consts` and prices and delivers its steps in one loop.
Both make the float operations of `StepModel.decode_run_s` in the same order, so the same
values, without NumPy's per-call cost.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from runners.sim import params


class StepModel(Protocol):
    """What pricing a decode step reads of `perf.StepModel`."""

    decode_s_per_ctx: float
    capped: bool
    cap: int
    capped_decode_s_per_ctx: float
    cuda_graphs: bool
    piecewise_s: float
    eager_launch_s: float
    spec_k: int
    spec_gain: float
    async_sched: bool

    def decode_consts(self, n_seqs: int) -> tuple[float, bool, float]: ...


class Plain(NamedTuple):
    """A decode step of n sequences in the common case (CUDA graphs, asynchronous scheduling,
    no capped attention, no speculative decoding): its time at context sum c is
    max(base + c * per_ctx + launch, cpu) + eps, each operation in that order."""

    base: float
    per_ctx: float
    launch: float
    cpu: float
    eps: float


def is_plain(model: StepModel) -> bool:
    """Whether the model's decode steps are in `Plain`'s common case."""
    return model.cuda_graphs and model.async_sched and not model.capped and not model.spec_k


def plain_consts(model: StepModel, n_seqs: int) -> Plain:
    """`Plain` of a decode step of `n_seqs` sequences (the model `is_plain`)."""
    base, full_graph, cpu = model.decode_consts(n_seqs)
    launch = params.GRAPH_REPLAY_S if full_graph else model.piecewise_s
    return Plain(base, model.decode_s_per_ctx, launch, cpu, params.ASYNC_OVERLAP_EPS_S)


def decode_ends(
    model: StepModel, n_seqs: int, ctx_sum0: float, steps: int, now: float, t_limit: float
) -> list[float]:
    """End times of up to `steps` steps of `decode_run_s` from `now`, stopping after the first
    that reaches `t_limit`."""
    base, full_graph, cpu = model.decode_consts(n_seqs)
    per_ctx, capped, cap = model.decode_s_per_ctx, model.capped, float(n_seqs * model.cap)
    capped_per_ctx, graphs = model.capped_decode_s_per_ctx, model.cuda_graphs
    piecewise, eager, eager_s = model.piecewise_s, params.EAGER_GPU_FACTOR, model.eager_launch_s
    spec, gain, overlap = model.spec_k, model.spec_gain, model.async_sched
    replay, eps = params.GRAPH_REPLAY_S, params.ASYNC_OVERLAP_EPS_S
    ends: list[float] = []
    cum = 0.0
    if graphs and overlap and not capped and not spec:  # the common case, its own loop
        launch = replay if full_graph else piecewise
        for j in range(steps):
            gpu = base + (ctx_sum0 + n_seqs * float(j)) * per_ctx
            gpu += launch
            cum += (gpu if gpu >= cpu else cpu) + eps
            end = now + cum
            ends.append(end)
            if end >= t_limit:
                break
        return ends
    for j in range(steps):
        ctx_sum = ctx_sum0 + n_seqs * float(j)
        gpu = base + ctx_sum * per_ctx
        if capped:
            gpu = gpu + min(ctx_sum, cap) * capped_per_ctx
        if full_graph:
            gpu += replay
        elif graphs:
            gpu += piecewise
        else:
            gpu = max(gpu * eager, eager_s)
        out = max(gpu, cpu) + eps if overlap else gpu + cpu
        if spec:
            out = out / gain
        cum += out
        end = now + cum
        ends.append(end)
        if end >= t_limit:
            break
    return ends
