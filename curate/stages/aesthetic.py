"""LAION aesthetic score per clip from the frame embeddings ``clip_embed`` wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from curate.models.aesthetic import AestheticHead, aggregate, load_head
from curate.models.clip import embed_dim
from curate.models.settings import AestheticConfig, ClipModelConfig, ModelsConfig
from curate.records import Record
from curate.stages.batched import BatchedVideoStage, clips_of, copy_clips


@dataclass
class AestheticStage(BatchedVideoStage):
    """Writes ``aesthetic_score`` (per-frame head scores reduced by ``aggregate``).

    Clips without ``_frame_embeddings`` (skipped by ``clip_embed``) get ``None``.
    ``clip`` is only used to check at setup that the head fits the embedding size.
    """

    name: ClassVar[str] = "aesthetic"
    reads: ClassVar[tuple[str, ...]] = ("clips",)  # and clips._frame_embeddings where clip_embed wrote them
    writes: ClassVar[tuple[str, ...]] = ("clips.aesthetic_score",)
    aesthetic: AestheticConfig = field(default_factory=AestheticConfig)
    clip: ClipModelConfig | None = None
    models: ModelsConfig = field(default_factory=ModelsConfig)
    cpus: float = 0.25
    batch_size: int = 8
    _head: AestheticHead | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Any) -> "AestheticStage | None":
        if config.aesthetic is None:
            return None
        return cls(aesthetic=config.aesthetic, clip=config.clip, models=config.models)

    def setup(self) -> None:
        head = load_head(self.aesthetic, self.models)
        if self.clip is not None and head.input_dim != embed_dim(self.clip, self.models):
            raise ValueError(
                f"aesthetic head {self.aesthetic.head} takes {head.input_dim}-d embeddings but clip model "
                f"{self.clip.model} gives {embed_dim(self.clip, self.models)}-d; use the head made for that model"
            )
        self._head = head

    def process_videos(self, videos: list[Record]) -> list[Record]:
        assert self._head is not None, "setup() not called"
        out = copy_clips(videos)
        for c in clips_of(out):
            fe = c.get("_frame_embeddings")
            c["aesthetic_score"] = None if fe is None else aggregate(self._head.score(fe), self.aesthetic.aggregate)
        return out
