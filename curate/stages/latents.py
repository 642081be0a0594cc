"""VAE latents of the accepted clips during ``curate run``, from the pixels the encode stage took.

The encode stage hands over each accepted clip's loader pixels per bucket
(``_latent_pixels``: bucket-sized, never full frames); this stage runs them
through the VAE in batches per bucket, on its own pool (a GPU fraction where
the cluster has GPUs), and leaves the stored tensors on the clip
(``_latents``) and what the manifest records per set on the video
(``_latent_sets``). The rows are committed with the video's clip rows, in the
same ledger-last commit (:mod:`curate.output.rows`), so a resumed run never
stores a latent twice and a crash loses none that was committed.

Clip pieces (a long video's clips encode sent ahead of its record,
``curate.records.PIECE``) carry their clips' pixels too: unlike other stages
this one does not pass them untouched but gives their clips ``_latents`` and
the piece its ``_latent_sets``, so the writer stages the piece's latent rows
with its clip rows and they commit with the video's ledger row (or are
dropped with the piece when the video fails). A piece whose VAE call fails
goes on without latents (the video's record may be in another worker and
past this stage already): a warning says so, and ``curate latents`` adds
what is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from curate.records import FAILED, Record, is_piece
from curate.stages.batched import BatchedVideoStage, clips_of, copy_clips, gpus_for
from curate.stages.encode import PIXELS

log = logging.getLogger(__name__)
LATENTS = "_latents"  # clip key: bucket key -> (latent bytes, logvar bytes or None)
SETS = "_latent_sets"  # video key: bucket key -> the set record (curate.latents.set_record)


@dataclass
class LatentsStage(BatchedVideoStage):
    """Encodes ``_latent_pixels`` with the pipeline's VAE (loaded once per worker)."""

    name: ClassVar[str] = "latents"
    gpu_share: ClassVar[float] = 0.3
    reads: ClassVar[tuple[str, ...]] = ("clips", f"clips.{PIXELS}")
    writes: ClassVar[tuple[str, ...]] = (f"clips.{LATENTS}", SETS)
    latents: Any = None  # LatentsConfig
    models: Any = None  # ModelsConfig
    cpus: float = 1.0
    batch_size: int = 4
    gpu_batch_size: int | None = 16
    _vae: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Any) -> "LatentsStage | None":
        if config.latents is None:
            return None
        return cls(latents=config.latents, models=config.models, gpus=gpus_for(cls.gpu_share, config.latents.device))

    def setup(self) -> None:
        from curate.models.device import pick_device, pick_precision
        from curate.models.vae import load_vae

        device = pick_device(self.latents.device)
        self._vae = load_vae(self.latents.vae, self.models, device, pick_precision(device, self.latents.precision))

    def teardown(self) -> None:
        self._vae = None

    def process(self, batch: list[Record]) -> list[Record]:
        return list(self.process_iter(batch))

    def process_iter(self, batch: list[Record]) -> Iterator[Record]:
        """The batch's clip pieces first, their latents made here too; then its videos, batched as any model stage's."""
        pieces = [r for r in batch if is_piece(r)]
        if pieces:
            yield from self._pieces(pieces)
        videos = [r for r in batch if not is_piece(r)]
        if videos:
            yield from BatchedVideoStage.process(self, videos)

    def _pieces(self, pieces: list[Record]) -> Iterator[Record]:
        """``pieces`` with their clips' latents: one batched call, or piece by piece if it fails (or runs guarded)."""
        todo = [p for p in pieces if any(c.get(PIXELS) for c in p.get("clips") or [])]
        done: dict[int, Record] = {}
        if len(todo) > 1 and self.timeout_s is None:
            try:
                done = {id(p): out for p, out in zip(todo, self.process_videos(todo))}
            except Exception as e:  # noqa: BLE001 - retried piece by piece, where the error is logged
                log.warning("%s: batched call on clip pieces failed (%s: %s); retrying piece by piece", self.name, type(e).__name__, e)
        wanted = {id(p) for p in todo}
        for p in pieces:
            yield p if id(p) not in wanted else done.get(id(p)) or self._one_piece(p)

    def _one_piece(self, piece: Record) -> Record:
        *_, out = self.stream_captured(piece) if self.timeout_s is None else self._guarded(piece)
        if out.get("status") != FAILED:
            return out
        log.warning("latents: a clip piece of video %s (%s): %s; its %d clips get no latents now (`curate latents` adds them)",
                    piece["video_id"], piece.get("uri"), out.get("reason"), len(piece.get("clips") or []))
        return dict(piece, clips=[{k: v for k, v in c.items() if k != PIXELS} for c in piece.get("clips") or []])

    def process_videos(self, videos: list[Record]) -> list[Record]:
        import numpy as np
        import torch

        from curate.data.decode import normalize
        from curate.data.latents import to_bytes
        from curate.latents import options, set_record

        assert self._vae is not None, "setup() not called"
        cfg, out = self.latents, copy_clips(videos)
        owner = {id(c): v for v in out for c in v.get("clips") or []}
        by_bucket: dict[str, list[Record]] = {}
        for c in clips_of(out):
            for key in c.get(PIXELS) or {}:
                by_bucket.setdefault(key, []).append(c)
        for key, clips in by_bucket.items():
            for at in range(0, len(clips), cfg.batch_size):
                batch = clips[at:at + cfg.batch_size]
                pixels = normalize(torch.from_numpy(np.stack([c[PIXELS][key] for c in batch])), options(cfg))
                mean, logvar = self._vae.encode(pixels)
                record = set_record(cfg, self._vae.info, key, list(mean.shape[1:]))
                for i, c in enumerate(batch):
                    c.setdefault(LATENTS, {})[key] = (to_bytes(mean[i], cfg.dtype), to_bytes(logvar[i], cfg.dtype) if cfg.posterior else None)
                    owner[id(c)].setdefault(SETS, {})[key] = record
        for c in clips_of(out):
            c.pop(PIXELS, None)  # bucket pixels go no further than here
        return out
