"""The greedy duplicate decision over candidates in their global visiting order.

Both dedup engines run this kernel: the single-machine pass on every
candidate at once, the distributed pass (:mod:`curate.dedup_distributed`)
on each connected component of the neighbour graph. They agree only if a
pair's test has one answer whichever rows are computed together, so the
pair tests are canonical: pHash distances are integers, and a cosine that a
float32 matrix product puts within its rounding bound of the threshold is
recomputed exactly (float64 products of the float32 unit rows, summed with
:func:`math.fsum`) before it is compared. The cosine a reason reports is that
exact value too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from curate.config import DedupConfig
from curate.records import Reason, reason

BLOCK = 256  # candidates compared with all better ones per matrix product


@dataclass(frozen=True)
class Candidates:
    """Candidates in visiting order (position 0 is visited first): what the greedy test reads."""

    hashes: np.ndarray  # (n,) uint64 pHashes
    emb: np.ndarray  # (n, D) float32 rows of unit length (zeros where absent)
    has: np.ndarray  # (n,) bool: the row has an embedding and the cosine test is on

    def __len__(self) -> int:
        return len(self.hashes)

    def take(self, rows: np.ndarray) -> Candidates:
        return Candidates(self.hashes[rows], self.emb[rows], self.has[rows])


def visiting_order(ids: list[str], rank: list[int], score: list[float | None]) -> list[int]:
    """Best first: rank (accepted before flagged), score descending, clip id.

    Scores count to 6 significant digits, so float noise between runners
    (threaded kernels, batch composition) cannot reorder equal scores: they fall to the clip id.
    """
    def key(i: int) -> tuple[int, int, float, str]:
        s = score[i]
        ok = s is not None and np.isfinite(s)
        return rank[i], 0 if ok else 1, -float(f"{s:.6g}") if ok else 0.0, ids[i]

    return sorted(range(len(ids)), key=key)


def candidates(phash: list[str], embedding: np.ndarray, has: np.ndarray, order: list[int], cfg: DedupConfig) -> Candidates:
    """The candidates of ``order`` as arrays: hex pHashes as integers, embeddings normalised once."""
    n = len(order)
    hashes = np.array([int(phash[i], 16) for i in order], np.uint64)
    emb = np.asarray(embedding, np.float32)[order] if n else np.zeros((0, 1), np.float32)
    on = np.asarray(has, bool)[order] & (cfg.cosine_threshold is not None) if n else np.zeros(0, bool)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return Candidates(hashes, np.ascontiguousarray(emb, np.float32), on)


def rounding_bound(dim: int) -> float:
    """A bound, with a factor 2 to spare, on a float32 dot product's error for unit vectors of ``dim`` values."""
    return 2.0 * (dim + 2) * 2.0**-24


def exact_cosine(u: np.ndarray, v: np.ndarray) -> float:
    """The dot product of two float32 rows, correctly rounded: float64 products are exact, fsum sums them exactly."""
    return math.fsum((u.astype(np.float64) * v.astype(np.float64)).tolist())


def greedy(c: Candidates, cfg: DedupConfig) -> dict[int, tuple[int, Reason]]:
    """Position -> (position of the first kept clip it duplicates, reason), visiting positions in order.

    A pHash within ``phash_max_distance`` wins over an embedding cosine at
    least ``cosine_threshold``; a dropped clip keeps no one out.
    """
    n = len(c)
    kept = np.zeros(n, bool)
    out: dict[int, tuple[int, Reason]] = {}
    d, thr = cfg.phash_max_distance, cfg.cosine_threshold
    eps = rounding_bound(c.emb.shape[1])
    for a in range(0, n, BLOCK):
        b = min(n, a + BLOCK)
        dist = np.bitwise_count(c.hashes[a:b, None] ^ c.hashes[None, :b]) if d is not None else None
        cos = c.emb[a:b] @ c.emb[:b].T if thr is not None and c.has[a:b].any() else None
        for r, k in enumerate(range(a, b)):
            found = None
            if dist is not None:
                js = np.flatnonzero(kept[:k] & (dist[r, :k] <= d))
                if js.size:
                    found = (int(js[0]), reason("phash_max_distance", f"phash distance {int(dist[r, js[0]])} <= phash_max_distance {d}"))
            if found is None and cos is not None and c.has[k]:
                for j in np.flatnonzero(kept[:k] & c.has[:k] & (cos[r, :k] > thr - eps)):
                    exact = exact_cosine(c.emb[k], c.emb[j])
                    if exact >= thr:
                        found = (int(j), reason("cosine_threshold", f"cosine {exact:.3f} >= cosine_threshold {thr:g}"))
                        break
            if found is None:
                kept[k] = True
            else:
                out[k] = found
    return out
