"""Embed every clip's sampled frames with CLIP, once, for all CLIP consumers.

The aesthetic head, clip-retrieval captions and the caption check all read
``_frame_embeddings`` instead of running the image tower again. Frames of all
clips of all videos in a batch go through the model together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from curate.models.settings import EmbeddingConfig
from curate.records import Record
from curate.stages.batched import ClipModelStage, clips_of, copy_clips, gpus_for


@dataclass
class ClipEmbedStage(ClipModelStage):
    """Writes per clip ``embedding`` (list of floats) and transient ``_frame_embeddings`` (k, D).

    Clips already holding ``reject_reasons`` are skipped when ``skip_rejected``
    (their columns stay null), so no model time goes to clips that are dropped.
    """

    name: ClassVar[str] = "clip_embed"
    gpu_share: ClassVar[float] = 0.4
    reads: ClassVar[tuple[str, ...]] = ("clips", "clips._frames")
    writes: ClassVar[tuple[str, ...]] = ("clips.embedding", "clips._frame_embeddings")
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    skip_rejected: bool = True
    cpus: float = 1.0

    @classmethod
    def from_config(cls, config: Any) -> "ClipEmbedStage | None":
        if config.clip is None:
            return None
        return cls(clip=config.clip, models=config.models, embedding=config.embedding,
                   gpus=gpus_for(cls.gpu_share, config.clip.device))

    def process_videos(self, videos: list[Record]) -> list[Record]:
        assert self._model is not None, "setup() not called"
        out = copy_clips(videos)
        todo = [c for c in clips_of(out) if c.get("_frames") and not (self.skip_rejected and c.get("reject_reasons"))]
        emb = self._model.encode_images([f for c in todo for f in c["_frames"]])
        dtype = np.dtype(self.embedding.dtype)
        start = 0
        for c in todo:
            fe = emb[start : start + len(c["_frames"])]
            start += len(c["_frames"])
            mean = fe.mean(axis=0)
            c["_frame_embeddings"] = fe
            c["embedding"] = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(dtype).tolist()
        return out
