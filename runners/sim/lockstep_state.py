"""The lazy state of a lockstep loop's decoding requests (`lockstep.Lockstep` runs the loop).

Place in the data flow: `lockstep.Lockstep` derives from `LazyDecoding`, which holds one
replica's running requests as the lockstep keeps them: the decoding ones lazily (KV length and
tokens generated are an offset plus the replica's step count; aggregates: their number, context
sum, count per page residue of the offset, a heap of their finishes), the others (`part`) in the
engine's per-request state. It moves requests in and out of the lazy state, writes it into the
engine's arrays for a step of `_iterate` and takes it back after, and turns the engine's
per-request arrays into Python lists while the loop runs (`AS_LISTS`).
"""

from __future__ import annotations

import heapq

import numpy as np

from runners.sim.replica import ReplicaEngine

# The engine's per-request arrays the loop reads and writes one element at a time: while it
# runs they are Python lists (an element read costs ~13 ns there, ~115 ns from NumPy; the
# conversions ~20 ns each way), NumPy again for `_iterate` and the records. The LRU positions
# of a request's own pages are read only when prefixes are cached without chains.
AS_LISTS = (
    "seq_len", "kv_len", "gen", "blocks", "last_s", "first_s", "done_s", "success", "prompt",
    "out", "child",
)  # fmt: skip
READ_ONLY = ("prompt", "out", "child")  # of `AS_LISTS`: their arrays come back unconverted
OWN_CACHE_LISTS = ("cache_blocks", "cache_base", "cache_total")


class LazyDecoding:
    """Lazy state of one `VllmEngine`'s decoding requests."""

    def __init__(self, engine: ReplicaEngine) -> None:
        self.eng = engine
        n = engine.n
        self.page = engine.page
        self.out: list[int] = engine.out.tolist()
        self.child: list[int] = engine.child.tolist()
        self.kv_off = [0] * n  # decoding: kv_len = kv_off + steps, gen = gen_off + steps
        self.gen_off = [0] * n
        self.order = [0] * n  # position in the running order (admission sequence)
        self.next_order = 0
        self.dec: dict[int, None] = {}  # decoding requests in running order
        self.part: list[int] = []  # the other running requests, after them in running order
        self.kv_sum = 0  # KV tokens of the decoding requests
        self.residue = [0] * self.page  # decoding requests per kv_off % page
        self.finishes: list[tuple[int, int, int]] = []  # (step count at finish, order, rid)
        self.d_last = engine.stream.free_s  # when the last step's tokens went out
        self.gaps: list[float] = []  # ITL values, each `counts` times
        self.counts: list[int] = []
        self.runs: list[tuple[np.ndarray, int]] = []  # vectorized stretches' gaps, count each
        self.dtypes: dict[str, np.dtype] = {}  # of the `AS_LISTS` arrays while they are lists
        self.kept: dict[str, np.ndarray] = {}  # the `READ_ONLY` arrays while they are lists

    # --- entering and leaving the lazy state ------------------------------------------------
    def _join(self, rid: int) -> None:
        eng = self.eng
        kv = int(eng.kv_len[rid])
        s = eng.steps
        self.kv_off[rid] = kv - s
        self.gen_off[rid] = int(eng.gen[rid]) - s
        self.dec[rid] = None
        self.kv_sum += kv
        self.residue[(kv - s) % self.page] += 1
        finish = self.out[rid] - self.gen_off[rid]
        heapq.heappush(self.finishes, (finish, self.order[rid], rid))

    def _decoding(self, rid: int) -> bool:
        """Whether running request `rid` can be kept lazily from now on."""
        eng = self.eng
        kv = int(eng.kv_len[rid])
        return (
            int(eng.seq_len[rid]) - kv == 1
            and int(eng.gen[rid]) > 0
            and float(eng.last_s[rid]) == self.d_last
            and int(eng.blocks[rid]) == -(-kv // self.page)
        )

    def _write(self, rid: int) -> None:
        """Store decoding request `rid`'s lazy state in the engine's arrays."""
        eng = self.eng
        kv = self.kv_off[rid] + eng.steps
        eng.kv_len[rid] = kv
        eng.seq_len[rid] = kv + 1
        eng.gen[rid] = self.gen_off[rid] + eng.steps
        eng.blocks[rid] = -(-kv // self.page)
        eng.last_s[rid] = self.d_last

    def _leave(self, rid: int) -> None:
        self._write(rid)
        del self.dec[rid]
        kv_off = self.kv_off[rid]
        self.kv_sum -= kv_off + self.eng.steps
        self.residue[kv_off % self.page] -= 1

    def materialize(self) -> None:
        """Write the lazy state into the engine's arrays and its running order."""
        eng = self.eng
        if self.dec:
            ids = np.fromiter(self.dec, dtype=np.int64, count=len(self.dec))
            s = eng.steps
            kv = np.array([self.kv_off[r] for r in self.dec], dtype=np.int64) + s
            eng.kv_len[ids] = kv
            eng.seq_len[ids] = kv + 1
            eng.gen[ids] = np.array([self.gen_off[r] for r in self.dec], dtype=np.int64) + s
            eng.blocks[ids] = (kv + (self.page - 1)) // self.page
            eng.last_s[ids] = self.d_last
        eng.running = np.array(list(self.dec) + self.part, dtype=np.int64)

    def rebuild(self) -> None:
        """Take the lazy state from the engine's arrays (after a step of `_iterate`)."""
        self.dec.clear()
        self.part = []
        self.kv_sum = 0
        self.residue = [0] * self.page
        self.finishes = []
        self.d_last = self.eng.stream.free_s
        for rid in self.eng.running.tolist():
            self.order[rid] = self.next_order
            self.next_order += 1
            if not self.part and self._decoding(rid):
                self._join(rid)
            else:
                self.part.append(rid)

    def flush_itl(self) -> None:
        eng = self.eng
        gaps, counts = self.gaps, self.counts
        if gaps:
            eng.itl_pooled.append(
                (
                    np.fromiter(gaps, dtype=np.float64, count=len(gaps)),
                    np.fromiter(counts, dtype=np.int64, count=len(counts)),
                )
            )
        for run_gaps, count in self.runs:
            eng.itl_pooled.append((run_gaps, np.full(len(run_gaps), count, dtype=np.int64)))
        self.gaps, self.counts, self.runs = [], [], []

    def _to_lists(self) -> None:
        """The engine's `AS_LISTS` arrays as Python lists (same values, exact)."""
        eng = self.eng
        names = (
            AS_LISTS + OWN_CACHE_LISTS if eng.prefix_caching and eng.cache is None else AS_LISTS
        )
        self.kept = {name: getattr(eng, name) for name in READ_ONLY}
        self.dtypes = {name: getattr(eng, name).dtype for name in names if name not in self.kept}
        for name in names:
            setattr(eng, name, getattr(eng, name).tolist())

    def _to_arrays(self) -> None:
        eng = self.eng
        for name, dtype in self.dtypes.items():
            values = getattr(eng, name)
            setattr(eng, name, np.fromiter(values, dtype=dtype, count=len(values)))
        for name, array in self.kept.items():
            setattr(eng, name, array)

    def _drop_finishes(self) -> None:
        """The finish heap without the entries of requests that left the lazy state by
        preemption (rare; the heap's head is then always a decoding request's finish)."""
        dec = self.dec
        self.finishes = [entry for entry in self.finishes if entry[2] in dec]
        heapq.heapify(self.finishes)
