"""SGLang's admission of a queue head whose prompt is a chain of prefix segments.

Place in the data flow: `scheduler.SglangEngine._admit` (the prefill batch's admissions, in
both the step-by-step and the lockstep loop) hands a chained queue head to
`admit_chained_head`, which applies SGLang's checks (the reservation of the running requests'
remaining output against the free pool, then the pages the head takes) and, if it fits,
takes its pages and holds its chain's segments (`ReplicaEngine._take_chained`, as vLLM's
admission does).

On an overloaded trace the head is tried after every prefill batch and refused by the
reservation almost every time, so the check first runs with the most the head could hit
(`PrefixCache.hit_ceiling`, no chain walk): the same float operations on a smaller integer,
so it refuses only heads the full check refuses. Then the chain is looked at once
(`PrefixCache.admission`) for the hit and the pages.
"""

from __future__ import annotations

from runners.sim.replica import ReplicaEngine


def admit_chained_head(
    eng: ReplicaEngine,
    rid: int,
    left: int,
    ratio: float,
    budget: int,
    rem: float,
    batched: bool,
) -> tuple[int, int, float] | None:
    """Admit chained head `rid` of SGLang engine `eng` (`left`: its clipped remaining output;
    `ratio`: the reservation's new-token ratio; `budget`: the batch's tokens left; `rem`: the
    pool's tokens beyond the reservation; `batched`: the batch has requests already): (tokens
    it computes in this batch, tokens it has to compute, its reservation cost), its pages
    taken and its chain held; None if SGLang refuses it (nothing changed)."""
    cache = eng.cache
    assert cache is not None
    page = eng.page
    seq: int = eng.seq_len.item(rid)
    last = (seq - 1) // page  # a hit leaves at least the prompt's last token to compute
    most = cache.hit_ceiling(rid) // page
    if seq - (most if most < last else last) * page + left * ratio > rem:
        return None
    hit_tok, revived, fresh = cache.admission(rid, eng.q_front)
    hit_pages = hit_tok // page
    hit = (hit_pages if hit_pages < last else last) * page
    extend = seq - hit
    chunked = eng.config.chunked_prefill
    if not chunked and extend > budget and batched:
        return None
    n = min(extend, budget) if chunked else extend
    cost = extend + left * ratio
    if cost > rem or not eng._take_chained(rid, hit, hit + n, revived, fresh):
        return None
    return n, extend, cost
