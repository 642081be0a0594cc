"""Dedup past one machine: the greedy decision per connected component of the neighbour graph, as Ray tasks.

A clip's fate depends only on its neighbours (clips within the pHash
distance or over the cosine threshold), so :func:`curate.dedup_greedy.greedy`
run on each connected component, in the global order, decides exactly what
it decides on all candidates at once (its pair tests are canonical). The
graph only has to be a superset of the true neighbour edges — an extra edge
merges two components, which changes nothing — never miss one:

* **pHash**: the 64 bits split into ``d + 1`` bands; two hashes within ``d``
  bits agree on a whole band (pigeonhole), so comparing the hashes of each
  (band, value) group finds every pair. Groups are compared in Ray tasks.
* **Embeddings**: a FAISS IVF index (k-means cells, inner-product lists)
  searched in Ray tasks with ``range_search_preassigned``. Each query probes
  every cell that can hold a neighbour: cell ``b`` is skipped only when the
  query lies farther than the search radius from the half-space of points
  nearer ``b``'s centroid than the query's own centroid (the bisector bound),
  so the approximate index answers exactly. Its inner products are float32,
  so it searches :data:`COSINE_SLACK` below the threshold and the greedy
  kernel decides those pairs exactly.

Union-find (scipy's connected components over the edges, each task's edges
first reduced to a spanning forest) gives the components; clips alone in
theirs are kept without further work, the others are resolved greedily in
Ray tasks, and only the duplicates come back.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

import numpy as np

from curate.config import DedupConfig
from curate.dedup_greedy import Candidates, greedy
from curate.records import Reason

log = logging.getLogger(__name__)

COSINE_SLACK = 1e-3  # searched below the cosine threshold: covers FAISS's float32 inner products
BOUND_SLACK = 1e-3  # added to the search radius in the bisector bound: covers float32 cell assignment
FLAT_FROM = 0.25  # probes covering more of the cells than this: a flat (matrix product) search is faster
QUERY_BLOCK = 256  # queries per range search: bounds a task's result lists when many clips are alike
TASKS_PER_CPU = 2
Edges = tuple[np.ndarray, np.ndarray]


def distributed_greedy(c: Candidates, cfg: DedupConfig) -> dict[int, tuple[int, Reason]]:
    """What ``greedy(c, cfg)`` returns, computed as Ray tasks on the cluster ``curate`` is connected to."""
    import ray

    from curate.runners.ray import init_ray

    init_ray()
    n = len(c)
    if n < 2:
        return {}
    tasks = max(1, int(ray.cluster_resources().get("CPU", 1)) * TASKS_PER_CPU)
    ref = ray.put(c)
    parts = [*_phash_edges(c, cfg, tasks), *_cosine_edges(c, ref, cfg, tasks)]  # every task submitted before any wait
    comps = components(n, [p if isinstance(p, tuple) else ray.get(p) for p in parts])
    log.info("dedup: %d candidates, %d components of 2 or more (largest %d)", n, len(comps), max(map(len, comps), default=0))
    out: dict[int, tuple[int, Reason]] = {}
    for part in ray.get([_task(resolve_components).remote(ref, chunk, cfg) for chunk in _balance(comps, tasks, lambda g: len(g) ** 2)]):
        out.update(part)
    return out


def components(n: int, edges: list[Edges]) -> list[np.ndarray]:
    """Connected components of two or more of the ``n`` positions, each as ascending positions."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    i = np.concatenate([e[0] for e in edges] or [np.zeros(0, np.int64)])
    j = np.concatenate([e[1] for e in edges] or [np.zeros(0, np.int64)])
    _, labels = connected_components(coo_array((np.ones(len(i), np.int8), (i, j)), shape=(n, n)), directed=False)
    order = np.argsort(labels, kind="stable")  # stable: each component's positions stay ascending
    groups = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)
    return [g for g in groups if len(g) > 1]


def forest(i: np.ndarray, j: np.ndarray) -> Edges:
    """Edges with the same connected components as ``(i, j)``: each node to its component's smallest node."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    if not len(i):
        return i, j
    nodes, inv = np.unique(np.concatenate([i, j]), return_inverse=True)
    m = len(nodes)
    _, labels = connected_components(coo_array((np.ones(len(i), np.int8), (inv[: len(i)], inv[len(i):])), shape=(m, m)),
                                     directed=False)
    root = np.empty(labels.max() + 1, nodes.dtype)
    root[labels[::-1]] = nodes[::-1]  # the last write wins: the smallest node of each label
    return nodes, root[labels]


def _balance(items: list[Any], bins: int, weight: Any) -> list[list[Any]]:
    """``items`` in at most ``bins`` non-empty lists of similar total weight (heaviest first, into the lightest list)."""
    loads = [(0, b) for b in range(bins)]
    out: list[list[Any]] = [[] for _ in range(bins)]
    for item in sorted(items, key=weight, reverse=True):
        load, b = min(loads)
        out[b].append(item)
        loads[b] = (load + weight(item), b)
    return [o for o in out if o]


# -- pHash: banded candidate groups ------------------------------------------------------------

def bands(d: int) -> list[tuple[int, int]]:
    """``(shift, width)`` of the ``d + 1`` bands covering 64 bits as evenly as possible (``d < 64``)."""
    k = d + 1
    widths = [64 // k + (1 if b < 64 % k else 0) for b in range(k)]
    return [(sum(widths[:b]), w) for b, w in enumerate(widths)]


def _phash_edges(c: Candidates, cfg: DedupConfig, tasks: int) -> list[Any]:
    """Edges joining equal hashes, and Ray tasks (object refs) finding the pairs in each band group."""
    d = cfg.phash_max_distance
    if d is None:
        return []
    n = len(c)
    if d >= 64:  # every pair is within 64 bits: one component
        return [(np.arange(n - 1), np.arange(1, n))]
    uniq, first, inv = np.unique(c.hashes, return_index=True, return_inverse=True)
    same = (np.arange(n), first[inv])  # equal hashes: each clip to the first with its hash
    groups = []
    for shift, width in bands(d):
        key = (uniq >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(key, kind="stable")
        for g in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
            if len(g) > 1:
                groups.append(g)
    if not groups:
        return [same]
    import ray

    uniq_ref, first_ref = ray.put(uniq), ray.put(first)
    return [same, *(_task(phash_pairs).remote(uniq_ref, first_ref, chunk, d) for chunk in _balance(groups, tasks, lambda g: len(g) ** 2))]


def phash_pairs(uniq: np.ndarray, first: np.ndarray, groups: list[np.ndarray], d: int) -> Edges:
    """Pairs of distinct hashes within ``d`` bits inside each group (of indices into ``uniq``), as a forest
    over positions (``first``: the first position holding each hash)."""
    ii, jj = [], []
    for g in groups:
        h = uniq[g]
        for a in range(0, len(g), 1024):
            near = np.bitwise_count(h[a:a + 1024, None] ^ h[None, :]) <= d
            r, s = np.nonzero(near)
            keep = s > r + a
            ii.append(first[g[r[keep] + a]])
            jj.append(first[g[s[keep]]])
    return forest(np.concatenate(ii), np.concatenate(jj))


# -- embeddings: FAISS IVF range search with exact probing ----------------------------------------

def cells(m: int) -> int:
    """IVF cells for ``m`` vectors: 2 sqrt(m) (at 10k-100k about the number of topics a collection
    clusters into, where the exact probing prunes most cells), at least 39 training points each, at most 1024."""
    return max(1, min(1024, 2 * math.isqrt(m), m // 39))


def _cosine_edges(c: Candidates, ref: Any, cfg: DedupConfig, tasks: int) -> list[Any]:
    """Ray tasks (object refs) finding the pairs over the cosine threshold, a block of queries each."""
    thr = cfg.cosine_threshold
    rows = np.flatnonzero(c.has)
    if thr is None or len(rows) < 2:
        return []
    index = _task(build_index).remote(ref, rows)
    blocks = np.array_split(rows, min(tasks, len(rows)))
    return [_task(range_pairs).remote(ref, index, b, thr) for b in blocks if len(b)]


def build_index(c: Candidates, rows: np.ndarray) -> np.ndarray:
    """A serialised FAISS ``IndexIVFFlat``: k-means (L2) cells, inner-product lists, ids = positions."""
    import faiss

    x = c.emb[rows]
    nlist = cells(len(rows))
    km = faiss.Kmeans(x.shape[1], nlist, niter=6, seed=1234, max_points_per_centroid=39, verbose=False)
    km.train(x)
    quantizer = faiss.IndexFlatL2(x.shape[1])
    quantizer.add(km.centroids)
    index = faiss.IndexIVFFlat(quantizer, x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.add_with_ids(x, rows.astype(np.int64))
    return faiss.serialize_index(index)


def centroid_gaps(centroids: np.ndarray) -> np.ndarray:
    """``|c_a - c_b|`` for every pair of centroids, in float64."""
    cen = centroids.astype(np.float64)
    sq = (cen * cen).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * cen @ cen.T, 0.0))


def probes(q: np.ndarray, centroids: np.ndarray, gaps: np.ndarray, radius: float) -> np.ndarray:
    """Per query, the cells that can hold a point within ``radius`` of it (``-1`` pads), nearest first.

    Cell ``b`` is skipped when the query is farther than ``radius`` from the
    half-space ``{y : |y - c_b| <= |y - c_a|}`` (``a`` the query's own cell):
    no point of ``b`` can then be that near. Computed in float64.
    """
    q64, cen = q.astype(np.float64), centroids.astype(np.float64)
    d2 = (q64 * q64).sum(1)[:, None] + (cen * cen).sum(1)[None, :] - 2.0 * q64 @ cen.T
    own = d2.argmin(1)
    bound = (d2 - d2[np.arange(len(q)), own][:, None] - 1e-4) / np.maximum(2.0 * gaps[own], 1e-12)
    bound[np.arange(len(q)), own] = -np.inf
    probe = bound <= radius + BOUND_SLACK
    order = np.argsort(np.where(probe, d2, np.inf), axis=1, kind="stable")[:, : max(1, int(probe.sum(1).max()))]
    return np.where(np.take_along_axis(probe, order, 1), order, -1).astype(np.int64)


def range_pairs(c: Candidates, index_bytes: np.ndarray, queries: np.ndarray, thr: float) -> Edges:
    """Pairs ``(query, neighbour)`` with inner product above ``thr - COSINE_SLACK``, exactly, as a forest.

    Queries whose probes cover more than :data:`FLAT_FROM` of the cells (data
    without cluster structure) search a flat index instead: the same exact
    answer through a matrix product, faster than scanning nearly every list.
    """
    import faiss

    faiss.omp_set_num_threads(1)  # one task, one CPU
    index = faiss.deserialize_index(index_bytes)
    centroids = index.quantizer.reconstruct_n(0, index.nlist)
    gaps = centroid_gaps(centroids)
    radius = math.sqrt(max(0.0, 2.0 - 2.0 * (thr - COSINE_SLACK)))  # |u - v| of unit vectors at that cosine
    flat = None
    ii, jj = [], []
    for a in range(0, len(queries), QUERY_BLOCK):
        rows = queries[a:a + QUERY_BLOCK]
        q = c.emb[rows]
        keys = probes(q, centroids, gaps, radius)
        if (keys >= 0).sum() > FLAT_FROM * index.nlist * len(rows):
            if flat is None:
                flat = faiss.IndexIDMap(faiss.IndexFlatIP(c.emb.shape[1]))
                indexed = np.flatnonzero(c.has)
                flat.add_with_ids(c.emb[indexed], indexed.astype(np.int64))
            lims, _, found = flat.range_search(q, thr - COSINE_SLACK)
        else:
            index.nprobe = keys.shape[1]  # the wrapper checks the probe lists against it
            lims, _, found = index.range_search_preassigned(q, thr - COSINE_SLACK, keys, np.zeros(keys.shape, np.float32))
        src = np.repeat(rows, np.diff(lims).astype(np.int64))
        other = found != src
        ii.append(src[other])
        jj.append(found[other])
    return forest(np.concatenate(ii), np.concatenate(jj))


def resolve_components(c: Candidates, comps: list[np.ndarray], cfg: DedupConfig) -> dict[int, tuple[int, Reason]]:
    """The greedy decision inside each component, in positions of ``c``."""
    out: dict[int, tuple[int, Reason]] = {}
    for rows in comps:
        for k, (j, why) in greedy(c.take(rows), cfg).items():
            out[int(rows[k])] = (int(rows[j]), why)
    return out


@functools.cache
def _task(fn: Any) -> Any:
    """``fn`` as a Ray task of one CPU (made on first use: importing this module does not import Ray)."""
    import ray

    return ray.remote(num_cpus=1)(fn)
