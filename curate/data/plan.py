"""The epoch plan: which rows each rank yields, in which batches, in which order.

A pure, cheap function of row metadata and ``(num_ranks, seed, epoch)``, in
the spirit of mosaicml streaming's partitioning.  Every process (each rank,
each DataLoader worker) recomputes the same plan instead of coordinating,
and resuming is "skip the first k batches of the plan".

Steps:
1. Stream order (:mod:`curate.data.order`): row groups in seeded random
   order, rows rotated inside them and block-shuffled.
2. Ranks take contiguous, equal (+-1 row) slices of that stream.
3. Each rank runs a seeded shuffle buffer over its slice.
4. Rows join their bucket's pending batch; a batch is emitted when full.
   Leftover partial batches are padded by repeating their rows ("pad") or
   dropped ("drop").
5. Ranks are equalised to the same batch count -- padded up to the longest
   by repeating whole batches, or cut to the shortest -- because a rank that
   runs out early hangs the others' collectives.

Elastic resume: when a job comes back on another world size mid-epoch, the
epoch continues as a new *segment*.  ``history`` lists each earlier
segment's ``(num_ranks, batches consumed)``; the rows those batches really
delivered (not padding) are taken out of the epoch's stream and the rest is
planned again, the same way, for the new world.  The state stays a few
integers and every process still derives the same plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .order import DEFAULT_BLOCK, shuffle_buffer, stream_order

Policy = Literal["pad", "drop"]


@dataclass
class RankPlan:
    """One rank's batches: row ids (into the index), which entries are repeats, their bucket."""

    batches: list[np.ndarray]
    repeated: list[np.ndarray]
    buckets: list[int]


@dataclass
class EpochPlan:
    """Every rank's plan plus what the policy reported.

    Attributes:
        ranks: per-rank plans, all with ``num_batches`` batches.
        dropped: row ids the "drop" policy left out this epoch.
        unbucketed: row ids that fit no bucket (too short or too small).
    """

    ranks: list[RankPlan]
    num_batches: int
    dropped: np.ndarray
    unbucketed: np.ndarray

    def repeated(self) -> np.ndarray:
        """Row ids yielded again as padding (one entry per extra occurrence)."""
        out = [b[m] for r in self.ranks for b, m in zip(r.batches, r.repeated)]
        return np.concatenate(out) if out else np.zeros(0, np.int64)


def plan_epoch(
    shard: np.ndarray,
    row_group: np.ndarray,
    bucket: np.ndarray,
    batch_sizes: list[int],
    num_ranks: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    shuffle_buffer: int = 1024,
    policy: Policy = "pad",
    shuffle_block: int = DEFAULT_BLOCK,
    history: Sequence[tuple[int, int]] = (),
) -> EpochPlan:
    """Plan one epoch over rows given by their shard, row group and bucket (-1: none).

    Row ids are positions in these arrays, which must be in (shard, row group,
    position) order as :func:`curate.data.index.build_index` returns them.
    ``history`` holds the earlier segments of this epoch (elastic resume);
    the plan returned is that of the current segment.
    """
    if policy not in ("pad", "drop"):
        raise ValueError(f"policy must be 'pad' or 'drop', not {policy!r}")
    if num_ranks < 1:
        raise ValueError("num_ranks must be >= 1")
    bucket = np.asarray(bucket)
    keep = np.flatnonzero(bucket >= 0)
    order = keep[stream_order(np.asarray(shard)[keep], np.asarray(row_group)[keep], seed, epoch, shuffle, shuffle_block)]
    for segment, (ranks_then, consumed) in enumerate(history):
        if ranks_then < 1 or consumed < 0:
            raise ValueError(f"bad resume history entry {(ranks_then, consumed)}")
        earlier = _segment(order, bucket, batch_sizes, ranks_then, seed, epoch, segment, shuffle, shuffle_buffer, policy)
        if consumed > earlier.num_batches:
            raise ValueError(f"resume history says {consumed} batches of a segment that has {earlier.num_batches}")
        delivered = [b[~m] for r in earlier.ranks for b, m in zip(r.batches[:consumed], r.repeated[:consumed])]
        if delivered:
            order = order[~np.isin(order, np.concatenate(delivered))]
    return _segment(order, bucket, batch_sizes, num_ranks, seed, epoch, len(history), shuffle, shuffle_buffer, policy)


def _segment(
    order: np.ndarray,
    bucket: np.ndarray,
    batch_sizes: list[int],
    num_ranks: int,
    seed: int,
    epoch: int,
    segment: int,
    shuffle: bool,
    buffer: int,
    policy: Policy,
) -> EpochPlan:
    """Split the stream ``order`` among ``num_ranks`` ranks and batch each slice."""
    bounds = np.arange(num_ranks + 1) * len(order) // num_ranks
    ranks, dropped = [], []
    for r in range(num_ranks):
        stream = order[bounds[r] : bounds[r + 1]].tolist()
        if shuffle:  # segment 0 keeps the seeds plans had before elastic resume existed
            rng = np.random.default_rng([seed, epoch, 1, r] + ([segment] if segment else []))
            stream = shuffle_buffer(stream, buffer, rng)
        plan, left = _batches(stream, bucket, batch_sizes, pad=policy == "pad")
        ranks.append(plan)
        dropped += left
    target = _equalise(ranks, policy, dropped)
    return EpochPlan(ranks, target, np.array(sorted(dropped), np.int64), np.flatnonzero(bucket < 0))


def _batches(stream: list[int], bucket: np.ndarray, sizes: list[int], pad: bool) -> tuple[RankPlan, list[int]]:
    plan, dropped = RankPlan([], [], []), []
    pending: dict[int, list[int]] = {}
    keys = bucket[stream].tolist() if stream else []

    def emit(b: int, rows: list[int], n_real: int) -> None:
        plan.batches.append(np.array(rows, np.int64))
        plan.repeated.append(np.arange(len(rows)) >= n_real)
        plan.buckets.append(b)

    for row, b in zip(stream, keys):
        rows = pending.setdefault(b, [])
        rows.append(row)
        if len(rows) == sizes[b]:
            emit(b, pending.pop(b), sizes[b])
    for b, rows in pending.items():  # in order of their first pending row
        if pad:
            emit(b, [rows[i % len(rows)] for i in range(sizes[b])], len(rows))
        else:
            dropped += rows
    return plan, dropped


def _equalise(ranks: list[RankPlan], policy: Policy, dropped: list[int]) -> int:
    counts = [len(r.batches) for r in ranks]
    if policy == "drop":
        target = min(counts)
        for r in ranks:
            for rows in r.batches[target:]:
                dropped += rows.tolist()
            del r.batches[target:], r.repeated[target:], r.buckets[target:]
        return target
    target = max(counts)
    pool = [(r, i) for r in ranks for i in range(len(r.batches))]
    for r in ranks:
        source = [(r, i) for i in range(len(r.batches))] or pool
        for j in range(target - len(r.batches)):
            src, i = source[j % len(source)]
            r.batches.append(src.batches[i])
            r.repeated.append(np.ones(len(src.batches[i]), bool))
            r.buckets.append(src.buckets[i])
    return target
