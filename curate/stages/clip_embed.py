"""Embed every clip's sampled frames with CLIP, once, for all CLIP consumers.

The aesthetic head, clip-retrieval captions and the caption check all read
``_frame_embeddings`` instead of running the image tower again. Frames of all
clips of all videos in a batch go through the model together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.models.clip import embed_dim
from curate.models.settings import ClipModelConfig, EmbeddingConfig, ModelsConfig
from curate.records import Record
from curate.stages.batched import ClipModelStage, clips_of, copy_clips


def manifest_entry(clip: ClipModelConfig, models: ModelsConfig, embedding: EmbeddingConfig) -> dict[str, Any]:
    """What the run manifest records about the stored embedding (no weights loaded)."""
    import open_clip

    return {
        "model": clip.model, "pretrained": clip.weights, "random_init": clip.random_init,
        "library": f"open_clip {open_clip.__version__}", "dim": embed_dim(clip, models), "dtype": embedding.dtype,
        "normalised": True, "aggregate": "mean of frame embeddings, L2-normalised",
    }


@dataclass
class ClipEmbedStage(ClipModelStage):
    """Writes per clip ``embedding`` (list of floats) and transient ``_frame_embeddings`` (k, D).

    Clips already holding ``reject_reasons`` are skipped when ``skip_rejected``
    (their columns stay null), so no model time goes to clips that are dropped.
    """

    name = "clip_embed"
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    skip_rejected: bool = True

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
