"""``ClipDataset``: the trainer-facing IterableDataset of bucketed, decoded clip batches.

It yields whole batches (use ``DataLoader(ds, batch_size=None)``,
:class:`ClipLoader` or torchdata's ``StatefulDataLoader``), because only the
dataset knows the buckets and only batch counts can be equalised across
ranks.  Every process recomputes the epoch plan (:mod:`curate.data.plan`); a
worker produces every ``num_workers``-th batch of its rank's plan, so
DataLoader's round-robin fetching returns them in plan order.  Resume state
is "epoch e, k batches consumed" (:mod:`curate.data.state`): the next
iteration skips the first k batches of the same plan, which restores the
shard order, the shuffle and every worker at once; on another world size
the rest of the epoch is planned again for the new ranks.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from . import state as st
from .buckets import BucketConfig
from .collate import LOADER_KEYS, Collate, Transform, apply_hooks
from .columns import check_tensor_columns, to_tensor
from .decode import DecodeError, DecodeOptions, decode_clip, normalize
from .index import ReadFilter, RowIndex, build_index, read_columns
from .latents import bucket_key, from_bytes, latent_index
from .order import DEFAULT_BLOCK
from .plan import EpochPlan, Policy, plan_epoch
from .rows import RowCache
from .text_embeddings import caption_hash, text_index, to_tensors
from .world import World, worker_batches

DECODE_COLUMNS = ("clip_id", "caption", "video", "video_format", "fps", "num_frames", "width", "height", "source_uri", "start_s", "end_s", "source_rotation")
DEFAULT_META = ("video_id", "start_s", "end_s", "fps", "num_frames", "width", "height", "motion_score", "sharpness", "camera_motion", "aesthetic_score")
BATCH_KEYS = ("video", "latents", "logvar", "text_embeddings", "text_mask", "caption", "clip_id", "meta", *LOADER_KEYS)
LATENT_COLUMNS = ("clip_id", "caption")  # what a latent batch reads of the clip rows (no video bytes)
IDENTITY = ("seed", "fingerprint")


class ClipDataset(IterableDataset):
    """Bucketed batches of decoded clips from shard paths, a glob or an OUTPUT dir.

    Args:
        source: OUTPUT dir or its manifest.json, a glob, or shard paths (local or fsspec URIs).
        buckets: target shapes and batch sizes, e.g. ``BucketConfig.single(256, 256, 16, 8)``.
        filter: rows to keep, pushed down into the parquet scan; raises if it keeps nothing.
        decode: resize / crop / temporal / dtype options (defaults: cover, centre crop, random start, uint8).
        seed, shuffle, shuffle_buffer: seeded shuffle; see :mod:`curate.data.order`.
        shuffle_block: rows permuted together; an index this small or smaller
            is permuted globally, so each rank's share changes every epoch.
        policy: "pad" repeats samples, "drop" drops the remainder, so ranks match.
        columns: extra metadata columns returned per sample in ``meta`` (missing ones are skipped).
        tensors: numeric columns returned as batched tensors under their own
            names (``(B,)``, or ``(B, D)`` for embeddings); must exist in every shard.
        transform: per-sample hook run where the batch is built (in workers).
        collate: joins the (transformed) samples; default stacks tensors.
        rank, num_ranks: override the detected distributed world (construct after init_process_group).
        latents: a VAE id (``latents.vae.id`` of ``curate latents``): batches hold ``latents``
            ``(B, C, T', H', W')`` as stored (fp16/bf16, unscaled; ``latent_sets`` has each
            bucket's scaling/shift factors), plus ``logvar`` when stored, instead of ``video``:
            nothing is decoded. ``source`` must be the OUTPUT dir; the buckets' ``fps``/``stride``
            must be those the latents were made with. Clips without latents for their bucket are
            left out (with a warning), like clips that fit no bucket.
        text_embeddings: an encoder id (``text_embeddings.encoder.id``): batches also hold
            ``text_embeddings`` ``(B, L, D)`` as stored (fp16/bf16) and ``text_mask`` ``(B, L)`` bool
            (``text_embedding_set`` records the encoder). ``source`` must be the OUTPUT dir. Clips
            without an embedding of their current caption (new clips, edited captions) are left
            out with a warning until ``curate latents`` runs again.
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
        shuffle_block: int = DEFAULT_BLOCK,
        policy: Policy = "pad",
        columns: Sequence[str] = DEFAULT_META,
        tensors: Sequence[str] = (),
        transform: Transform | None = None,
        collate: Collate | None = None,
        rank: int | None = None,
        num_ranks: int | None = None,
        latents: str | None = None,
        text_embeddings: str | None = None,
    ) -> None:
        world = World.detect(rank, num_ranks)
        self.rank, self.num_ranks = world.rank, world.num_ranks
        self.index: RowIndex = build_index(source, filter)
        self.buckets, self.options, self.policy = buckets, decode or DecodeOptions(), policy
        self.seed, self.shuffle, self.shuffle_buffer, self.shuffle_block = seed, shuffle, shuffle_buffer, shuffle_block
        self.columns, self.tensors = tuple(columns), tuple(tensors)
        check_tensor_columns(self.tensors, list(zip(self.index.paths, self.index.schemas)), BATCH_KEYS)
        self.transform, self.collate = transform, collate
        self.position = st.Position()  # trainer-side position, kept in the main process
        self._cursor = st.Cursor()  # the current iteration's start, shared with (persistent) workers
        self._worker_pos: tuple[st.Position, int] | None = None  # in a worker: (iteration start, next batch it builds)
        self._resume: tuple[st.Position, int] | None = None  # in a worker: restored by StatefulDataLoader
        self._plan: tuple[tuple[int, tuple[tuple[int, int], ...]], EpochPlan] | None = None
        self.bucket_of_row = buckets.assign(self.index.width, self.index.height, self.index.num_frames, self.index.fps)
        self.latents = latents
        self.latent_sets: dict[str, dict[str, Any]] = {}  # bucket key (TxHxW) -> the manifest's record of its latents
        self._latent_index: RowIndex | None = None
        self.latent_of_row = np.zeros(0, np.int64)
        if latents is not None:
            self._join_latents(source, latents)
        self.text_embeddings = text_embeddings
        self.text_embedding_set: dict[str, Any] = {}  # the manifest's record of the encoder (class, shape, dtype, ...)
        self._text_index: RowIndex | None = None
        self.text_of_row = np.zeros(0, np.int64)
        if text_embeddings is not None:
            self._join_text(source, text_embeddings)
        if len(self.index) and not (self.bucket_of_row >= 0).any():
            raise ValueError(f"none of the {len(self.index)} clips fits a bucket (too short for their frames at the fps/stride, or smaller than every bucket)")
        if len(self.index) and self.plan(0).num_batches == 0:  # only policy="drop" gets here
            raise ValueError(
                f"policy='drop' leaves no batch: {int((self.bucket_of_row >= 0).sum())} clips over {self.num_ranks} ranks "
                f"fill no batch of sizes {sorted({b.batch_size for b in buckets.buckets})}; use policy='pad' or smaller batches"
            )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_plan": None}

    def _join_latents(self, source: Any, vae: str) -> None:
        """Find each row's latent row for its bucket; rows without one fit no bucket."""
        self._latent_index, self.latent_sets, where = latent_index(source, vae)
        for key, info in self.latent_sets.items():
            made = (info["frames"]["fps"], info["frames"]["stride"])
            if made != (self.buckets.fps, self.buckets.stride):
                raise ValueError(f"latents of VAE {vae!r} ({key}) were made at fps={made[0]}, stride={made[1]}; "
                                 f"these buckets ask for fps={self.buckets.fps}, stride={self.buckets.stride}")
        keys = [bucket_key(b.shape) for b in self.buckets.buckets]
        self.latent_of_row = np.array([where.get((cid, keys[b]), -1) if b >= 0 else -1
                                       for cid, b in zip(self.index.clip_id.tolist(), self.bucket_of_row.tolist())], np.int64)
        missing = int(((self.bucket_of_row >= 0) & (self.latent_of_row < 0)).sum())
        if missing:
            warnings.warn(f"{missing} clips have no latents of VAE {vae!r} for their bucket and are left out; "
                          "compute them with `curate latents OUTPUT PIPELINE.yaml`", UserWarning, stacklevel=3)
        self.bucket_of_row = np.where(self.latent_of_row >= 0, self.bucket_of_row, -1)

    # -- plan -----------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.position.epoch

    @property
    def consumed(self) -> int:
        return self.position.batch

    def plan(self, epoch: int | None = None, history: tuple[tuple[int, int], ...] | None = None) -> EpochPlan:
        """The (cached) plan of ``epoch`` (after the ``history`` segments), identical in every process."""
        if epoch is None:
            epoch, history = self.position.epoch, self.position.history if history is None else history
        key = (epoch, tuple(history or ()))
        if self._plan is None or self._plan[0] != key:
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
                shuffle_block=self.shuffle_block,
                policy=self.policy,
                history=key[1],
            )
            self._plan = (key, plan)
        return self._plan[1]

    def __len__(self) -> int:
        """Batches per rank in the current epoch (the same on every rank).

        The count can differ between epochs (each epoch reshuffles which rows, and
        so which buckets, each rank gets).  After the last batch of an epoch is
        consumed the dataset moves on to the next epoch, so ``len`` then answers
        for that one; use ``plan(epoch).num_batches`` for a given epoch.  After
        a resume on another world size it counts the epoch's current segment.
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

    def _join_text(self, source: Any, encoder: str) -> None:
        """Find each row's embedding of its current caption; rows without one fit no bucket."""
        self._text_index, self.text_embedding_set, where = text_index(source, encoder)
        captions: dict[str, str | None] = {}
        for path in self.index.paths:
            held = read_columns(self.index.filesystem, path, ["clip_id", "caption"])
            captions.update(zip(held.column("clip_id").to_pylist(), held.column("caption").to_pylist()))

        def current(cid: str) -> int:
            row, sha = where.get(cid, (-1, None))
            caption = captions.get(cid)
            return row if caption is not None and sha == caption_hash(caption) else -1

        self.text_of_row = np.array([current(cid) for cid in self.index.clip_id.tolist()], np.int64)
        missing = int(((self.bucket_of_row >= 0) & (self.text_of_row < 0)).sum())
        if missing:
            warnings.warn(f"{missing} clips have no embedding of their current caption by encoder {encoder!r} and are left out; "
                          "compute them with `curate latents OUTPUT PIPELINE.yaml`", UserWarning, stacklevel=3)
        self.bucket_of_row = np.where(self.text_of_row >= 0, self.bucket_of_row, -1)

    # -- resume -------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch (needed with a plain DataLoader or a StatefulDataLoader with workers).

        Setting the epoch the dataset is already in keeps its position, so a
        loop that calls ``set_epoch`` every epoch does not undo a resume.
        """
        if epoch != self.position.epoch:
            self.position = st.Position(epoch)
        self._cursor.publish(self.position)

    @property
    def fingerprint(self) -> str:
        """The rows plus every setting that shapes the plan: resuming with other ones would skip the wrong batches."""
        settings = repr((self.index.fingerprint, self.buckets, self.shuffle, self.shuffle_buffer, self.shuffle_block, self.policy)
                        + ((self.latents, self._latent_index.fingerprint) if self._latent_index is not None else ())
                        + ((self.text_embeddings, self._text_index.fingerprint) if self._text_index is not None else ()))
        return hashlib.sha256(settings.encode()).hexdigest()[:16]

    def state_dict(self) -> dict[str, Any]:
        """Where the trainer is: batches of the epoch it received (JSON-able).

        In the main process this counts what ``ClipLoader`` (or in-process
        iteration) handed out.  Inside a DataLoader worker -- where
        ``StatefulDataLoader`` asks -- it is that worker's own position, the
        next batch it would build; the loader keeps one per worker.
        """
        identity = {"seed": self.seed, "num_ranks": self.num_ranks, "fingerprint": self.fingerprint}
        info = get_worker_info()
        if info is None:
            return st.to_dict(self.position, **identity)
        start, nxt = self._worker_pos or self._resume or (self._cursor.read(), self._cursor.read().batch + info.id)
        return {**st.to_dict(start, **identity), "worker": {"id": info.id, "num_workers": info.num_workers, "next": nxt}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue where ``state`` stopped: a dataset state, or a whole ``StatefulDataLoader.state_dict()``.

        The data and seed must match.  The world size may differ: the rest of
        the epoch is then planned again for the new ranks, each clip not yet
        consumed seen once.  Worker states (``StatefulDataLoader`` restoring
        its workers) resume that worker's own sequence.
        """
        if not ("fingerprint" in state and "epoch" in state):
            state = st.from_loader_state(state)
        pos = st.from_dict(state)  # the version first: an older state's fingerprint differs too
        st.check_identity(state, self.state_dict(), IDENTITY)
        info = get_worker_info()
        if info is not None and "worker" in state:
            w = state["worker"]
            if (w["num_workers"], state["num_ranks"]) != (info.num_workers, self.num_ranks):
                raise ValueError(
                    f"cannot resume worker state of {w['num_workers']} workers on {state['num_ranks']} ranks with {info.num_workers} on {self.num_ranks}; "
                    "call dataset.load_state_dict(loader.state_dict()) in the main process and use a fresh loader"
                )
            self._resume, self._worker_pos = (pos, int(w["next"])), None
            return
        if "worker" in state:  # a single worker's state in the main process: not the trainer's position
            raise ValueError("this is one DataLoader worker's state; pass the whole StatefulDataLoader.state_dict() instead")
        pos = st.elastic(pos, int(state["num_ranks"]), self.num_ranks)
        if pos.batch >= self.plan(pos.epoch, pos.history).num_batches:  # a finished epoch (or segment)
            pos = st.Position(pos.epoch + 1)
        self.position = pos
        self._cursor.publish(pos)

    def _publish(self) -> None:
        self._cursor.publish(self.position)

    def _consume(self, epoch: int, k: int) -> None:
        if epoch < self.position.epoch:  # counted already (in-process iteration under ClipLoader)
            return
        history = self.position.history if epoch == self.position.epoch else ()
        self.position = st.Position(epoch, k + 1, history)
        if k + 1 >= self.plan(epoch, history).num_batches:
            self.position = st.Position(epoch + 1)

    # -- iteration ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Decide this iteration's batches now (so a worker's state is right before its first batch)."""
        main = get_worker_info() is None
        if main:
            self._publish()
        world = World.detect(self.rank, self.num_ranks)
        if self._resume is not None and not main:
            start, first = self._resume
            self._resume = None
            ks = range(first, self.plan(start.epoch, start.history).num_batches, world.num_workers)
        else:
            start = self._cursor.read()
            ks = worker_batches(self.plan(start.epoch, start.history).num_batches, start.batch, world.num_workers, world.worker)
        self._worker_pos = None if main else (start, ks.start)
        return self._generate(start, ks, main, world.num_workers)

    def _generate(self, start: st.Position, ks: range, main: bool, num_workers: int) -> Iterator[dict[str, Any]]:
        plan = self.plan(start.epoch, start.history).ranks[self.rank]
        needed = [r for k in ks for r in plan.batches[k].tolist()]
        if self._latent_index is not None:
            rows = RowCache(self.index, (*LATENT_COLUMNS, *self.columns, *self.tensors), needed)
            posterior = any(s.get("posterior") for s in self.latent_sets.values())
            latents = RowCache(self._latent_index, ("clip_id", "latent", *(("logvar",) if posterior else ())),
                               self.latent_of_row[needed].tolist())
        else:
            rows, latents = RowCache(self.index, (*DECODE_COLUMNS, *self.columns, *self.tensors), needed), None
        texts = None if self._text_index is None else RowCache(self._text_index, ("clip_id", "embedding", "mask"),
                                                                 self.text_of_row[needed].tolist())
        for k in ks:
            ids, repeated, bucket = plan.batches[k].tolist(), plan.repeated[k].copy(), plan.buckets[k]
            if latents is None:
                batch = self._batch(start.epoch, len(start.history), k, rows, ids, repeated, bucket, texts)
            else:
                batch = self._latent_batch(start.epoch, k, rows, latents, ids, repeated, bucket, texts)
            if main:
                self._consume(start.epoch, k)
            else:
                self._worker_pos = (start, k + num_workers)
            yield batch

    def _batch(self, epoch: int, segment: int, k: int, cache: RowCache, ids: list[int], repeated: np.ndarray, bucket_id: int,
               texts: RowCache | None) -> dict[str, Any]:
        rows = [cache.take(r) for r in ids]
        bucket = self.buckets.buckets[bucket_id]
        video = torch.empty((len(rows), bucket.num_frames, 3, bucket.height, bucket.width), dtype=torch.uint8)
        errors, ok = [], []
        for slot, row in enumerate(rows):
            rng = np.random.default_rng([self.seed, epoch, self.rank, k, slot] + ([segment] if segment else []))
            try:
                decode_clip(row, video[slot], self.buckets.fps, self.options, rng, self.buckets.stride)
                ok.append(slot)
            except DecodeError as e:  # keep the batch shape: stand in another sample, flagged as repeated
                errors.append(str(e))
        if not ok:
            raise DecodeError(f"every clip of batch {k} failed: {errors}")
        for n, slot in enumerate(s for s in range(len(rows)) if s not in ok):
            video[slot] = video[ok[n % len(ok)]]
            rows[slot] = rows[ok[n % len(ok)]]
            repeated[slot] = True
        if self.options.output == "float":
            video = normalize(video, self.options)
        out: dict[str, Any] = {
            "video": video,
            "caption": [r["caption"] for r in rows],
            "clip_id": [r["clip_id"] for r in rows],
            "meta": [{c: r[c] for c in self.columns if c in r} for r in rows],
        }
        for name in self.tensors:
            out[name] = to_tensor(name, [r[name] for r in rows], cache.types[name])
        self._add_text(out, texts, ids)
        if self.transform is not None or self.collate is not None:
            out = apply_hooks(out, self.tensors, self.transform, self.collate)
        out.update(repeated=torch.from_numpy(repeated), errors=errors, shape=bucket.shape, epoch=epoch, batch_index=k)
        return out


    def _add_text(self, out: dict[str, Any], texts: RowCache | None, ids: list[int]) -> None:
        """``text_embeddings`` ``(B, L, D)`` and ``text_mask`` ``(B, L)`` of the batch's clips (a stand-in for a clip that
        did not decode brings its own); each planned row is taken once, as the cache counts."""
        if texts is None:
            return
        stored = {str(self.index.clip_id[r]): texts.take(int(self.text_of_row[r])) for r in ids}
        out["text_embeddings"], out["text_mask"] = to_tensors([stored[c] for c in out["clip_id"]], self.text_embedding_set)

    def _latent_batch(self, epoch: int, k: int, cache: RowCache, latents: RowCache, ids: list[int], repeated: np.ndarray,
                      bucket_id: int, texts: RowCache | None) -> dict[str, Any]:
        """A batch of stored latents (no decode): ``latents`` ``(B, C, T', H', W')`` and ``logvar`` when stored."""
        rows = [cache.take(r) for r in ids]
        stored = [latents.take(int(self.latent_of_row[r])) for r in ids]
        bucket = self.buckets.buckets[bucket_id]
        info = self.latent_sets[bucket_key(bucket.shape)]
        out: dict[str, Any] = {"latents": torch.stack([from_bytes(s["latent"], info["shape"], info["dtype"]) for s in stored])}
        if info.get("posterior"):
            out["logvar"] = torch.stack([from_bytes(s["logvar"], info["shape"], info["dtype"]) for s in stored])
        out.update(caption=[r["caption"] for r in rows], clip_id=[r["clip_id"] for r in rows],
                   meta=[{c: r[c] for c in self.columns if c in r} for r in rows])
        for name in self.tensors:
            out[name] = to_tensor(name, [r[name] for r in rows], cache.types[name])
        self._add_text(out, texts, ids)
        if self.transform is not None or self.collate is not None:
            out = apply_hooks(out, self.tensors, self.transform, self.collate)
        out.update(repeated=torch.from_numpy(repeated), errors=[], shape=bucket.shape, epoch=epoch, batch_index=k)
        return out


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
