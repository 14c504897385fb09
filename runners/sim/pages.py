"""KV pages of decoding requests when a page holds several tokens (MindIE's 128-token blocks).

Place in the data flow: the SGLang-style scheduler models (`scheduler.SglangEngine` and
MindIE's, which derives from it) and their lockstep loop (`lockstep_sglang`) count a request's
KV in pages of `ReplicaEngine.page` tokens: a running request holds ceil(kv_len / page) pages,
and a decode step takes a new page only for the requests whose KV length is a multiple of the
page (SGLang's token pool is the page-1 case, where every request takes one per step). These
helpers give, for a run of decode steps, the pages the running set then holds.
"""

from __future__ import annotations

import numpy as np

from runners.bench.records import IntArray
from runners.sim.replica import ceil_div


def pages_after(kv0: IntArray, ks: IntArray, page: int) -> IntArray:
    """Per step count k in `ks`: the sum over requests of ceil((kv0 + k) / page)."""
    if page == 1:
        return np.asarray(int(kv0.sum()) + len(kv0) * ks, dtype=np.int64)
    # ceil((kv + k) / page) = kv // page + ceil((kv % page + k) / page): count the residues
    counts = np.bincount(kv0 % page, minlength=page)
    residues = np.arange(page, dtype=np.int64)
    per = ceil_div(residues[np.newaxis, :] + ks[:, np.newaxis], page)
    return np.asarray(int((kv0 // page).sum()) + per @ counts, dtype=np.int64)


def decode_pages_k(kv0: IntArray, held: int, free: int, k_hi: int, page: int) -> int:
    """Largest k in 1..k_hi whose decode steps' pages (`pages_after` minus the `held` pages)
    fit in `free` (1 when even one step does not: the caller retracted for that one)."""
    n = len(kv0)
    if page == 1:
        return max(1, min(k_hi, (free + held - int(kv0.sum())) // n))
    if n * (k_hi // page + 1) <= free + held - int(ceil_div(kv0, page).sum()):
        return k_hi
    lo, hi = 1, k_hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if int(ceil_div(kv0 + mid, page).sum()) - held <= free:
            lo = mid
        else:
            hi = mid - 1
    return lo
