"""Give every clip a caption, and record who wrote it.

Captions carried with the input (manifest, sidecars, subtitles for the clip's
span) are used as they are; with ``kind`` ``clip-retrieval`` or
``transformers`` a model writes the rest (or all, with ``keep_existing:
false``). Model output is cleaned and checked for degenerate text; a bad
caption is kept for a person to look at and the clip gets a ``flag_reasons`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from curate.models.captioners import (
    RetrievalCaptioner,
    TransformersCaptioner,
    make_captioner,
)
from curate.models.clip import shared_clip
from curate.models.hygiene import RepeatTracker, clean_caption, degenerate_reason
from curate.models.settings import CaptionConfig, ClipModelConfig, ModelsConfig
from curate.models.sidecars import SidecarReader, source_caption
from curate.records import Record
from curate.stages.batched import BatchedVideoStage, copy_clips, gpus_for

_PROVENANCE = ("caption_model", "caption_prompt", "caption_version")


@dataclass
class CaptionStage(BatchedVideoStage):
    """Writes ``caption``, ``caption_source``, ``caption_model``, ``caption_prompt``, ``caption_version``.

    ``clip`` is needed for ``clip-retrieval`` (it reads ``_frame_embeddings``
    and ``camera_motion``); ``transformers`` reads ``_frames``. Clips already
    holding ``reject_reasons`` are not sent to a model when ``skip_rejected``.
    """

    name: ClassVar[str] = "caption"
    gpu_share: ClassVar[float] = 0.4
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    clip: ClipModelConfig | None = None
    models: ModelsConfig = field(default_factory=ModelsConfig)
    skip_rejected: bool = True
    batch_size: int = 8
    gpu_batch_size: int | None = 32
    _gen: RetrievalCaptioner | TransformersCaptioner | None = field(default=None, init=False, repr=False, compare=False)
    _reader: SidecarReader | None = field(default=None, init=False, repr=False, compare=False)
    _repeats: RepeatTracker | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Any) -> "CaptionStage | None":
        cap = config.caption
        if cap is None:
            return None
        model = cap.kind == "transformers"
        device = cap.device if model else config.clip.device if config.clip else "cpu"
        return cls(caption=cap, clip=config.clip, models=config.models, cpus=1.0 if model else 0.5,
                   gpus=gpus_for(cls.gpu_share, device) if cap.kind != "source" else 0.0)

    def inputs(self) -> tuple[str, ...]:
        """``clip-retrieval`` reads the frame embeddings, ``transformers`` the sampled frames (where present)."""
        return ("uri", "video_id", "clips", "clips.start_s", "clips.end_s")

    def outputs(self) -> tuple[str, ...]:
        return ("clips.caption", "clips.caption_source", *(f"clips.{k}" for k in _PROVENANCE))

    def setup(self) -> None:
        clip = shared_clip(self.clip, self.models) if self.caption.kind == "clip-retrieval" and self.clip else None
        self._gen = make_captioner(self.caption, self.models, clip)
        self._reader = SidecarReader()
        self._repeats = RepeatTracker(self.caption.max_same_caption_videos)

    def _provenance(self) -> dict[str, Any]:
        gen = self._gen
        assert gen is not None
        return {"caption_source": gen.kind, "caption_model": gen.model, "caption_prompt": gen.prompt, "caption_version": gen.version}

    def process_videos(self, videos: list[Record]) -> list[Record]:
        assert self._reader is not None and self._repeats is not None, "setup() not called"
        out = copy_clips(videos)
        generate: list[tuple[Record, Record]] = []  # (video, clip)
        for v in out:
            for c in v["clips"]:
                carried = source_caption(v, c, self._reader)
                if carried and (self._gen is None or self.caption.keep_existing):
                    c.update(caption=" ".join(carried[0].split()), caption_source=carried[1], **dict.fromkeys(_PROVENANCE))
                elif self._gen is not None and not (self.skip_rejected and c.get("reject_reasons")):
                    generate.append((v, c))
                else:
                    c.update(caption=None, caption_source=None, **dict.fromkeys(_PROVENANCE))
        if generate:
            texts = self._gen.caption([c for _, c in generate])
            meta = self._provenance()
            for (v, c), text in zip(generate, texts):
                if text is None:
                    c.update(caption=None, caption_source=None, **dict.fromkeys(_PROVENANCE))
                    continue
                clean = clean_caption(text)
                c.update(meta, caption=clean or None)
                reasons = [degenerate_reason(clean, self.caption.min_words, self.caption.max_words),
                           self._repeats.add(clean, str(v.get("video_id")))]
                if any(reasons):
                    c["flag_reasons"] = [*(c.get("flag_reasons") or []), *(r for r in reasons if r)]
        return out
