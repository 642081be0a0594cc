"""``ClipDataset``: the trainer-facing IterableDataset of bucketed, decoded clip batches.

It yields whole batches (use ``DataLoader(ds, batch_size=None)`` or
:class:`ClipLoader`), because only the dataset knows the buckets and only
batch counts can be equalised across ranks.  Every process recomputes the
epoch plan (:mod:`curate.data.plan`); a worker produces every
``num_workers``-th batch of its rank's plan, so DataLoader's round-robin
fetching returns them in plan order.  Resume state is "epoch e, k batches
consumed": the next iteration skips the first k batches of the same plan,
which restores the shard order, the shuffle buffer and every worker at once.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .buckets import BucketConfig
from .decode import DecodeError, DecodeOptions, decode_clip
from .index import ReadFilter, RowIndex, build_index
from .plan import EpochPlan, Policy, plan_epoch
from .world import World, worker_batches

DECODE_COLUMNS = ("clip_id", "caption", "video", "video_format", "fps", "num_frames", "width", "height", "source_uri", "start_s", "end_s", "source_rotation")
DEFAULT_META = ("video_id", "start_s", "end_s", "fps", "num_frames", "width", "height", "motion_score", "sharpness", "camera_motion", "aesthetic_score")
STATE_VERSION = 1


class ClipDataset(IterableDataset):
    """Bucketed batches of decoded clips from shard paths, a glob or an OUTPUT dir.

    Args:
        source: OUTPUT dir or its manifest.json, a glob, or shard paths (local or fsspec URIs).
        buckets: target shapes and batch sizes, e.g. ``BucketConfig.single(256, 256, 16, 8)``.
        filter: rows to keep, pushed down into the parquet scan.
        decode: resize / crop / temporal / dtype options (defaults: cover, centre crop, random start, uint8).
        seed, shuffle, shuffle_buffer: seeded shard-order + buffer shuffle (rows in the buffer).
        policy: "pad" repeats samples, "drop" drops the remainder, so ranks match.
        columns: extra metadata columns returned per sample (missing ones are skipped).
        rank, num_ranks: override the detected distributed world (construct after init_process_group).
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        buckets: BucketConfig,
        *,
        filter: ReadFilter | pc.Expression | None = None,
        decode: DecodeOptions | None = None,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 1024,
        policy: Policy = "pad",
        columns: Sequence[str] = DEFAULT_META,
        rank: int | None = None,
        num_ranks: int | None = None,
    ) -> None:
        world = World.detect(rank, num_ranks)
        self.rank, self.num_ranks = world.rank, world.num_ranks
        self.index: RowIndex = build_index(source, filter)
        self.buckets, self.options, self.policy = buckets, decode or DecodeOptions(), policy
        self.seed, self.shuffle, self.shuffle_buffer = seed, shuffle, shuffle_buffer
        self.columns = tuple(columns)
        self.bucket_of_row = buckets.assign(self.index.width, self.index.height, self.index.num_frames, self.index.fps)
        self.epoch, self.consumed = 0, 0  # trainer-side position, kept in the main process
        # (epoch, first batch) of the current iteration, shared with (persistent) workers
        self._cursor = torch.zeros(2, dtype=torch.int64).share_memory_()
        self._plan: tuple[int, EpochPlan] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_plan": None}

    def plan(self, epoch: int | None = None) -> EpochPlan:
        """The (cached) plan of ``epoch``, identical in every process."""
        epoch = self.epoch if epoch is None else epoch
        if self._plan is None or self._plan[0] != epoch:
            sizes = [b.batch_size for b in self.buckets.buckets]
            plan = plan_epoch(
                self.index.shard,
                self.index.row_group,
                self.bucket_of_row,
                sizes,
                self.num_ranks,
                seed=self.seed,
                epoch=epoch,
                shuffle=self.shuffle,
                shuffle_buffer=self.shuffle_buffer,
                policy=self.policy,
            )
            self._plan = (epoch, plan)
        return self._plan[1]

    def __len__(self) -> int:
        """Batches per rank in the current epoch (the same on every rank).

        The count can differ between epochs (each epoch reshuffles which rows, and
        so which buckets, each rank gets).  After the last batch of an epoch is
        consumed the dataset moves on to the next epoch, so ``len`` then answers
        for that one; use ``plan(epoch).num_batches`` for a given epoch.
        """
        return self.plan().num_batches

    def report(self, epoch: int | None = None) -> dict[str, Any]:
        """Clip ids the policy repeated or dropped, and those no bucket fits, for ``epoch``."""
        plan, ids = self.plan(epoch), self.index.clip_id
        return {
            "epoch": self.epoch if epoch is None else epoch,
            "num_batches": plan.num_batches,
            "repeated": ids[plan.repeated()].tolist(),
            "dropped": ids[plan.dropped].tolist(),
            "unbucketed": ids[plan.unbucketed].tolist(),
        }

    # -- resume -------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch (needed only with a plain DataLoader)."""
        self.epoch, self.consumed = epoch, 0
        self._publish()

    def state_dict(self) -> dict[str, Any]:
        """Position of the trainer: batches of the epoch consumed through the main process."""
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "batch": self.consumed,
            "seed": self.seed,
            "num_ranks": self.num_ranks,
            "fingerprint": self.fingerprint,
        }

    @property
    def fingerprint(self) -> str:
        """The rows plus every setting that shapes the plan: resuming with other ones would skip the wrong batches."""
        settings = repr((self.index.fingerprint, self.buckets, self.shuffle, self.shuffle_buffer, self.policy))
        return hashlib.sha256(settings.encode()).hexdigest()[:16]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` stopped; the data, seed and world must match the checkpoint's."""
        mine = self.state_dict()
        for key in ("version", "seed", "num_ranks", "fingerprint"):
            if state.get(key) != mine[key]:
                raise ValueError(f"cannot resume: {key} is {mine[key]!r} here but {state.get(key)!r} in the state; rebuild the dataset as it was")
        self.epoch, self.consumed = int(state["epoch"]), int(state["batch"])
        self._publish()

    def _publish(self) -> None:
        self._cursor[0], self._cursor[1] = self.epoch, self.consumed

    def _consume(self, epoch: int, k: int) -> None:
        self.epoch, self.consumed = epoch, k + 1
        if self.consumed >= self.plan(epoch).num_batches:
            self.epoch, self.consumed = epoch + 1, 0

    # -- iteration ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        main = get_worker_info() is None
        if main:
            self._publish()
        epoch, start = (int(v) for v in self._cursor.tolist())
        world = World.detect(self.rank, self.num_ranks)
        plan = self.plan(epoch).ranks[self.rank]
        ks = worker_batches(len(plan.batches), start, world.num_workers, world.worker)
        rows = _RowCache(self.index, self.columns, [r for k in ks for r in plan.batches[k].tolist()])
        for k in ks:
            batch = self._batch(epoch, k, [rows.take(r) for r in plan.batches[k].tolist()], plan.repeated[k].copy(), plan.buckets[k])
            if main:
                self._consume(epoch, k)
            yield batch

    def _batch(self, epoch: int, k: int, rows: list[dict[str, Any]], repeated: np.ndarray, bucket_id: int) -> dict[str, Any]:
        bucket = self.buckets.buckets[bucket_id]
        video = torch.empty((len(rows), bucket.num_frames, 3, bucket.height, bucket.width), dtype=torch.uint8)
        errors, ok = [], []
        for slot, row in enumerate(rows):
            rng = np.random.default_rng([self.seed, epoch, self.rank, k, slot])
            try:
                decode_clip(row, video[slot], self.buckets.fps, self.options, rng)
                ok.append(slot)
            except DecodeError as e:  # keep the batch shape: stand in another sample, flagged as repeated
                errors.append(str(e))
        if not ok:
            raise DecodeError(f"every clip of batch {k} failed: {errors}")
        for n, slot in enumerate(s for s in range(len(rows)) if s not in ok):
            video[slot] = video[ok[n % len(ok)]]
            repeated[slot] = True
        if self.options.output == "float":
            mean = torch.tensor(self.options.mean).view(3, 1, 1)
            video = (video.float().div_(255) - mean) / torch.tensor(self.options.std).view(3, 1, 1)
        return {
            "video": video,
            "caption": [r["caption"] for r in rows],
            "clip_id": [r["clip_id"] for r in rows],
            "meta": [{c: r[c] for c in self.columns if c in r} for r in rows],
            "repeated": torch.from_numpy(repeated),
            "errors": errors,
            "shape": bucket.shape,
            "epoch": epoch,
            "batch_index": k,
        }


class _RowCache:
    """Rows a worker will need, read one row group at a time and evicted after their last use."""

    def __init__(self, index: RowIndex, columns: Sequence[str], needed: list[int]) -> None:
        self.index, self.uses = index, Counter(needed)
        self.by_group: dict[tuple[int, int], list[int]] = defaultdict(list)
        for r in sorted(self.uses):
            self.by_group[(int(index.shard[r]), int(index.row_group[r]))].append(r)
        self.columns = list(dict.fromkeys((*DECODE_COLUMNS, *columns)))
        self.rows: dict[int, dict[str, Any]] = {}

    def take(self, r: int) -> dict[str, Any]:
        if r not in self.rows:
            shard, rg = int(self.index.shard[r]), int(self.index.row_group[r])
            table = self.index.read(shard, rg, self.columns)
            wanted = self.by_group.pop((shard, rg))
            for rid, row in zip(wanted, table.take(self.index.pos[wanted]).to_pylist()):
                if row["clip_id"] != self.index.clip_id[rid]:
                    raise RuntimeError(f"shard {self.index.paths[shard]} changed since it was indexed")
                self.rows[rid] = row
        self.uses[r] -= 1
        return self.rows[r] if self.uses[r] else self.rows.pop(r)


class ClipLoader(DataLoader):
    """A ``DataLoader(dataset, batch_size=None)`` that tells the dataset which batches the trainer took.

    Workers prefetch ahead of the trainer, so only the main process knows what
    was consumed; counting here makes ``dataset.state_dict()`` exact, and
    publishing the position before each iteration reaches persistent workers too.
    """

    def __init__(self, dataset: ClipDataset, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=None, **kwargs)

    def __iter__(self) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        ds: ClipDataset = self.dataset  # type: ignore[assignment]
        ds._publish()
        for batch in super().__iter__():
            ds._consume(batch["epoch"], batch["batch_index"])
            yield batch
