"""The epoch plan: which rows each rank yields, in which batches, in which order.

A pure, cheap function of row metadata and ``(num_ranks, seed, epoch)``, in
the spirit of mosaicml streaming's partitioning.  Every process (each rank,
each DataLoader worker) recomputes the same plan instead of coordinating,
and resuming is "skip the first k batches of the plan".

Steps:
1. Stream order: shards in seeded random order, row groups shuffled inside
   each shard, rows in file order -- so reads stay sequential.
2. Ranks take contiguous, equal (+-1 row) slices of that stream.
3. Each rank runs a seeded shuffle buffer over its slice.
4. Rows join their bucket's pending batch; a batch is emitted when full.
   Leftover partial batches are padded by repeating their rows ("pad") or
   dropped ("drop").
5. Ranks are equalised to the same batch count -- padded up to the longest
   by repeating whole batches, or cut to the shortest -- because a rank that
   runs out early hangs the others' collectives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

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
) -> EpochPlan:
    """Plan one epoch over rows given by their shard, row group and bucket (-1: none).

    Row ids are positions in these arrays, which must be in (shard, row group,
    position) order as :func:`curate.data.index.build_index` returns them.
    """
    if policy not in ("pad", "drop"):
        raise ValueError(f"policy must be 'pad' or 'drop', not {policy!r}")
    if num_ranks < 1:
        raise ValueError("num_ranks must be >= 1")
    bucket = np.asarray(bucket)
    keep = np.flatnonzero(bucket >= 0)
    order = keep[_stream_order(np.asarray(shard)[keep], np.asarray(row_group)[keep], seed, epoch, shuffle)]
    bounds = np.arange(num_ranks + 1) * len(order) // num_ranks
    ranks, dropped = [], []
    for r in range(num_ranks):
        stream = order[bounds[r] : bounds[r + 1]].tolist()
        if shuffle:
            stream = _shuffle_buffer(stream, shuffle_buffer, np.random.default_rng([seed, epoch, 1, r]))
        plan, left = _batches(stream, bucket, batch_sizes, pad=policy == "pad")
        ranks.append(plan)
        dropped += left
    target = _equalise(ranks, policy, dropped)
    return EpochPlan(ranks, target, np.array(sorted(dropped), np.int64), np.flatnonzero(bucket < 0))


def _stream_order(shard: np.ndarray, row_group: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    n = len(shard)
    if not shuffle or n == 0:
        return np.arange(n)
    rng = np.random.default_rng([seed, epoch, 0])
    shard_key = rng.permutation(int(shard.max()) + 1)[shard]
    _, group = np.unique(np.stack([shard, row_group], axis=1), axis=0, return_inverse=True)
    group_key = rng.random(int(group.max()) + 1)[group.reshape(-1)]
    return np.lexsort((np.arange(n), group_key, shard_key))


def _shuffle_buffer(stream: list[int], size: int, rng: np.random.Generator) -> list[int]:
    """Classic streaming shuffle: emit a random buffered row, put the incoming one in its slot."""
    if size <= 1 or len(stream) <= 1:
        return stream
    buf, out = stream[:size], []
    slots = rng.integers(0, len(buf), size=max(0, len(stream) - size)).tolist()
    for row, j in zip(stream[size:], slots):
        out.append(buf[j])
        buf[j] = row
    return out + [buf[i] for i in rng.permutation(len(buf))]


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
