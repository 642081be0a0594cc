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

The decision runs on one machine (:mod:`curate.dedup_greedy`) or, past
:data:`DISTRIBUTED_FROM` candidates or with ``dedup.engine: distributed``, as
Ray tasks per connected component of the neighbour graph
(:mod:`curate.dedup_distributed`); both keep the same clips.

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
from curate.dedup_distributed import distributed_greedy
from curate.dedup_greedy import candidates, greedy, visiting_order
from curate.output.rewrite import Changes, apply_changes, read_columns
from curate.output.store import OutputStore
from curate.records import Reason, reason
from curate.review.outrank import keep_human

DUPLICATE = "duplicate_of "  # how a duplicate's reject reason detail starts
DUPLICATE_KEYS = ("phash_max_distance", "cosine_threshold")  # reason keys: the test that matched
# From this many candidates ``dedup.engine: auto`` runs the distributed pass (bench/bench_dedup.py:
# where it overtakes the single-machine one on two cores).
DISTRIBUTED_FROM = 20_000


@dataclass(frozen=True)
class DedupResult:
    duplicates: int  # clips marked duplicate after the pass
    changed: int  # clips whose decision this pass changed
    record: dict[str, Any] | None  # the rewrite's sidecar, None when nothing changed


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
    :func:`engine` picks the single-machine pass or the distributed one; both decide the same.

    Args:
        embedding, has: ``(n, D)`` embeddings (any scale; normalised here) and which rows have one.
    """
    order = visiting_order(ids, rank, score)
    c = candidates(phash, embedding, has, order, cfg)
    found = distributed_greedy(c, cfg) if engine(cfg, len(c)) == "distributed" else greedy(c, cfg)
    return {order[k]: (order[j], why) for k, (j, why) in found.items()}


def engine(cfg: DedupConfig, n: int) -> str:
    """``greedy`` or ``distributed``: ``dedup.engine``, where ``auto`` means distributed from :data:`DISTRIBUTED_FROM` candidates."""
    if cfg.engine != "auto":
        return cfg.engine
    return "distributed" if n >= DISTRIBUTED_FROM else "greedy"


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
                                            "thresholds": {"dedup": cfg.model_dump(mode="json", exclude={"engine"})}})
    return DedupResult(duplicates=count_duplicates(keys, changes), changed=len(changes), record=record)


def count_duplicates(keys: pa.Table, changes: Changes) -> int:
    """Clips marked duplicate once ``changes`` are applied to ``keys``."""
    now = zip(keys.column("clip_id").to_pylist(), keys.column("duplicate_of").to_pylist())
    return sum(1 for cid, dup in now if (changes[cid]["duplicate_of"] if cid in changes else dup))
