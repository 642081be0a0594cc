"""The epoch's stream order: which row comes when, before ranks split the stream.

Two forces pull against each other.  Training wants every rank to see a
different random share of the data each epoch; reading wants each row group
fetched once per (rank, worker) and its rows used soon after, so memory stays
bounded.  The order here serves both:

1. Row groups go in seeded random order (shards shuffled, row groups
   shuffled inside each shard), so a rank reads a contiguous run of them.
2. Inside each row group the rows are rotated by a random offset, so even a
   single row group splits between ranks differently every epoch.
3. The stream is cut into blocks of ``block`` rows and rows are permuted
   within each block (mosaicml streaming's block shuffle).  When the whole
   index fits in one block this is a global row-level permutation: small
   fine-tuning sets get a fresh random share per rank every epoch.  Larger
   data keeps locality: a rank touches the row groups of its few blocks only.

Afterwards each rank may run a classic shuffle buffer over its slice
(:func:`shuffle_buffer`).
"""

from __future__ import annotations

import numpy as np

DEFAULT_BLOCK = 1024  # rows; about what the default shuffle buffer already holds in memory


def stream_order(shard: np.ndarray, row_group: np.ndarray, seed: int, epoch: int, shuffle: bool, block: int = DEFAULT_BLOCK) -> np.ndarray:
    """Positions ``0..n-1`` in this epoch's stream order (identity when ``shuffle`` is off).

    ``shard`` and ``row_group`` must be in (shard, row group, position) order,
    as :func:`curate.data.index.build_index` returns them.
    """
    n = len(shard)
    if not shuffle or n == 0:
        return np.arange(n)
    rng = np.random.default_rng([seed, epoch, 0])
    shard_key = rng.permutation(int(shard.max()) + 1)[shard]
    _, group = np.unique(np.stack([shard, row_group], axis=1), axis=0, return_inverse=True)
    group = group.reshape(-1)
    num_groups = int(group.max()) + 1
    group_key = rng.random(num_groups)[group]
    # rotate rows inside their group: position within group shifted by a random offset
    sizes = np.bincount(group, minlength=num_groups)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    within = np.arange(n) - first[group]  # rows of a group are contiguous in index order
    rotated = (within + rng.integers(0, np.maximum(sizes, 1))[group]) % sizes[group]
    order = np.lexsort((rotated, group_key, shard_key))
    return _block_shuffle(order, max(1, block), rng)


def _block_shuffle(order: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    out = order.copy()
    for start in range(0, len(order), block):
        out[start : start + block] = rng.permutation(order[start : start + block])
    return out


def shuffle_buffer(stream: list[int], size: int, rng: np.random.Generator) -> list[int]:
    """Classic streaming shuffle: emit a random buffered row, put the incoming one in its slot."""
    if size <= 1 or len(stream) <= 1:
        return stream
    buf, out = stream[:size], []
    slots = rng.integers(0, len(buf), size=max(0, len(stream) - size)).tolist()
    for row, j in zip(stream[size:], slots):
        out.append(buf[j])
        buf[j] = row
    return out + [buf[i] for i in rng.permutation(len(buf))]
