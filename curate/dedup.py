"""Run-wide duplicate removal: one deterministic decision over every committed clip.

Duplicates span videos, so per-video stages cannot find them. After a run
commits everything, :func:`dedup_output` reads only ``clip_id``, ``phash``,
``embedding``, the ranking score and the decision columns, and decides
greedily: candidates (clips that are accepted or flagged before dedup) are
visited best first — accepted before flagged, ``dedup.score`` descending,
then ``clip_id`` — and a clip is dropped when it is within
``phash_max_distance`` bits of a kept clip's pHash (exact duplicate) or its
embedding cosine to a kept clip is at least ``cosine_threshold`` (near
duplicate); it then names the best such kept clip in ``duplicate_of``.

Clips dropped earlier stay candidates (their only reject reason is the
duplicate one), so the decision is a function of the committed clips alone:
the same for both runners, for a run resumed any number of times, and for a
repeated pass (which then changes nothing). Changes are committed through
:func:`curate.output.rewrite.apply_changes`; a clip that stops being a
duplicate is encoded again from its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from curate.config import DedupConfig
from curate.output.rewrite import Changes, apply_changes, read_columns
from curate.output.store import OutputStore
from curate.records import Reason, reason
from curate.review.outrank import keep_human

DUPLICATE = "duplicate_of "  # how a duplicate's reject reason detail starts
DUPLICATE_KEYS = ("phash_max_distance", "cosine_threshold")  # reason keys: the test that matched
_BLOCK = 256  # candidates compared with all better ones per matrix product


@dataclass(frozen=True)
class DedupResult:
    duplicates: int  # clips marked duplicate after the pass
    changed: int  # clips whose decision this pass changed
    record: dict[str, Any] | None  # the rewrite's sidecar, None when nothing changed


def _order(ids: list[str], rank: list[int], score: list[float | None]) -> list[int]:
    """Best first. Scores count to 6 significant digits, so float noise between runners
    (threaded kernels, batch composition) cannot reorder equal scores: they fall to the clip id."""
    def key(i: int) -> tuple[int, int, float, str]:
        s = score[i]
        ok = s is not None and np.isfinite(s)
        return rank[i], 0 if ok else 1, -float(f"{s:.6g}") if ok else 0.0, ids[i]

    return sorted(range(len(ids)), key=key)


def embedding_matrix(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(n, D)`` float32 rows of a fixed-size-list embedding column (zeros where null) and its validity mask.

    Straight from the Arrow buffers: no Python float per value, so a run's
    embeddings stay one compact matrix.
    """
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), bool) if n else np.zeros(0, bool)
    if not pa.types.is_fixed_size_list(arr.type) or not valid.any():
        return np.zeros((n, 1), np.float32), np.zeros(n, bool)
    dim = arr.type.list_size
    values = arr.values.slice(arr.offset * dim, n * dim).to_numpy(zero_copy_only=False)
    emb = np.array(values, np.float32).reshape(n, dim)  # a copy: zero-copy float32 buffers are read-only
    emb[~valid] = 0.0
    return emb, valid


def find_duplicates(ids: list[str], phash: list[str], embedding: np.ndarray, has: np.ndarray, score: list[float | None],
                    rank: list[int], cfg: DedupConfig) -> dict[int, tuple[int, Reason]]:
    """Greedy over (rank, score desc, clip id): index -> (index of the kept clip it duplicates, reason).

    The reason's key is the test that matched (``phash_max_distance`` or
    ``cosine_threshold``), its detail the measure (``phash distance 1 <= phash_max_distance 2``).

    Args:
        embedding, has: ``(n, D)`` embeddings (any scale; normalised here) and which rows have one.
    """
    order = _order(ids, rank, score)
    n = len(order)
    hashes = np.array([int(phash[i], 16) for i in order], np.uint64)
    emb = np.asarray(embedding, np.float32)[order] if n else np.zeros((0, 1), np.float32)
    has = np.asarray(has, bool)[order] & (cfg.cosine_threshold is not None) if n else np.zeros(0, bool)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    kept = np.zeros(n, bool)
    out: dict[int, tuple[int, Reason]] = {}
    for a in range(0, n, _BLOCK):
        b = min(n, a + _BLOCK)
        dist = np.bitwise_count(hashes[a:b, None] ^ hashes[None, :b]) if cfg.phash_max_distance is not None else None
        cos = emb[a:b] @ emb[:b].T if has[a:b].any() else None
        for r, k in enumerate(range(a, b)):
            found = None
            if dist is not None:
                js = np.flatnonzero(kept[:k] & (dist[r, :k] <= cfg.phash_max_distance))
                if js.size:
                    found = (js[0], reason("phash_max_distance",
                                            f"phash distance {int(dist[r, js[0]])} <= phash_max_distance {cfg.phash_max_distance}"))
            if found is None and cos is not None and has[k]:
                js = np.flatnonzero(kept[:k] & has[:k] & (cos[r, :k] >= cfg.cosine_threshold))
                if js.size:
                    found = (js[0], reason("cosine_threshold", f"cosine {float(cos[r, js[0]]):.3f} >= cosine_threshold {cfg.cosine_threshold:g}"))
            if found is None:
                kept[k] = True
            else:
                out[order[k]] = (order[int(found[0])], found[1])
    return out


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, (list, tuple)) else v


def resolve(keys: pa.Table, desired: list[dict[str, Any]], cfg: DedupConfig, on_change: dict[str, Any] | None = None) -> Changes:
    """Changes that give every row its ``desired`` decision plus the run-wide duplicate decision.

    Args:
        keys: committed rows (:func:`read_columns`) with ``clip_id``, ``phash``,
            ``embedding``, ``cfg.score`` and every column ``desired`` names.
        desired: per row, the decision before dedup: ``reject_reasons``, ``flag_reasons``
            (and any other column to set, e.g. the caption check's outcome).
        on_change: columns set as well on rows that change (e.g. the config hash).
    """
    ids = keys.column("clip_id").to_pylist()
    cand = [i for i, d in enumerate(desired) if not d["reject_reasons"]]
    dups: dict[int, tuple[int, Reason]] = {}
    if cfg.enabled and cand:
        emb, has = embedding_matrix(keys.column("embedding"))
        score = keys.column(cfg.score).to_pylist()
        found = find_duplicates([ids[i] for i in cand], keys.column("phash").take(cand).to_pylist(), emb[cand], has[cand],
                                [score[i] for i in cand], [1 if desired[i]["flag_reasons"] else 0 for i in cand], cfg)
        dups = {cand[i]: (cand[j], why) for i, (j, why) in found.items()}
    current = {c: keys.column(c).to_pylist() for c in {"duplicate_of", *(k for d in desired for k in d)}}
    changes: Changes = {}
    for i, want in enumerate(desired):
        want = dict(want, duplicate_of=None)
        if i in dups:
            j, why = dups[i]
            dup = reason(why["key"], f"{DUPLICATE}{ids[j]} ({why['detail']})")
            want.update(reject_reasons=[*want["reject_reasons"], dup], duplicate_of=ids[j])
        have = {k: _plain(current[k][i]) for k in want}
        for k in ("reject_reasons", "flag_reasons"):
            have[k] = have[k] or []
        if have != {k: _plain(v) for k, v in want.items()}:
            # No flags is null in the stages' rows; keep it so.
            changes[ids[i]] = dict(want, flag_reasons=want["flag_reasons"] or None, **(on_change or {}))
    return changes


def stored_decisions(keys: pa.Table) -> list[dict[str, Any]]:
    """Each row's committed decision without its duplicate reason (what dedup starts from)."""
    return [{"reject_reasons": [r for r in (rr or []) if r["key"] not in DUPLICATE_KEYS], "flag_reasons": list(fr or [])}
            for rr, fr in zip(keys.column("reject_reasons").to_pylist(), keys.column("flag_reasons").to_pylist())]


def key_columns(cfg: DedupConfig) -> list[str]:
    return ["clip_id", "video_id", "phash", "embedding", cfg.score, "reject_reasons", "flag_reasons", "duplicate_of"]


def dedup_output(store: OutputStore) -> DedupResult:
    """Decide duplicates over everything ``store`` has committed and commit the changes."""
    cfg = store.config.dedup
    keys = read_columns(store, key_columns(cfg))
    changes = keep_human(resolve(keys, stored_decisions(keys), cfg), store.location) if cfg.enabled else {}
    record = apply_changes(store, changes, {"kind": "dedup", "config_hash": store.config.config_hash(),
                                            "thresholds": {"dedup": cfg.model_dump(mode="json")}})
    return DedupResult(duplicates=count_duplicates(keys, changes), changed=len(changes), record=record)


def count_duplicates(keys: pa.Table, changes: Changes) -> int:
    """Clips marked duplicate once ``changes`` are applied to ``keys``."""
    now = zip(keys.column("clip_id").to_pylist(), keys.column("duplicate_of").to_pylist())
    return sum(1 for cid, dup in now if (changes[cid]["duplicate_of"] if cid in changes else dup))
