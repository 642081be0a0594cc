"""Does the caption describe the frames? CLIP similarity in three bands.

Each clip's caption is compared with each of its sampled frames; the mean and
the minimum cosine similarity are stored raw (``clip_sim_mean``/``clip_sim_min``)
and :func:`curate.decisions.caption_verdict` decides on the configured
statistic: pass, flag for human review, or reject (reason key ``pass_min`` or
``reject_below``, detail ``clip_sim_mean 0.180 < pass_min 0.22``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from curate.decisions import FLAG, REJECT, caption_verdict
from curate.models.settings import CaptionCheckConfig
from curate.records import Record
from curate.stages.batched import ClipModelStage, clips_of, copy_clips, gpus_for


@dataclass
class CaptionCheckStage(ClipModelStage):
    """Writes ``clip_sim_mean``, ``clip_sim_min``, ``caption_check`` and ``caption_check_reason``.

    A flagged clip gets the reason appended to ``flag_reasons`` (it goes to the
    review queue), a rejected one to ``reject_reasons``. Clips without a caption
    or without frame embeddings are not judged (``caption_check`` stays ``None``).
    """

    name: ClassVar[str] = "caption_check"
    gpu_share: ClassVar[float] = 0.2
    reads: ClassVar[tuple[str, ...]] = ("clips", "clips.caption")  # and clips._frame_embeddings where present
    writes: ClassVar[tuple[str, ...]] = ("clips.clip_sim_mean", "clips.clip_sim_min", "clips.caption_check", "clips.caption_check_reason")
    check: CaptionCheckConfig = field(default_factory=CaptionCheckConfig)
    cpus: float = 0.5

    @classmethod
    def from_config(cls, config: Any) -> "CaptionCheckStage | None":
        if config.caption_check is None:
            return None
        return cls(check=config.caption_check, clip=config.clip, models=config.models,
                   gpus=gpus_for(cls.gpu_share, config.clip.device))

    def process_videos(self, videos: list[Record]) -> list[Record]:
        assert self._model is not None, "setup() not called"
        out = copy_clips(videos)
        clips = clips_of(out)
        todo = [c for c in clips if (c.get("caption") or "").strip() and c.get("_frame_embeddings") is not None]
        texts = sorted({c["caption"] for c in todo})
        emb = dict(zip(texts, self._model.encode_texts(texts)))
        for c in clips:
            c.update(clip_sim_mean=None, clip_sim_min=None, caption_check=None, caption_check_reason=None)
            if not (c.get("caption") or "").strip():
                c["caption_check_reason"] = "no caption"
            elif c.get("_frame_embeddings") is None:
                c["caption_check_reason"] = "no frame embeddings"
        for c in todo:
            sims = np.asarray(c["_frame_embeddings"], np.float32) @ emb[c["caption"]]
            c["clip_sim_mean"], c["clip_sim_min"] = float(sims.mean()), float(sims.min())
            outcome, why = caption_verdict(c["clip_sim_mean"], c["clip_sim_min"], self.check)
            c["caption_check"], c["caption_check_reason"] = outcome, why["detail"] if why else None
            if outcome == FLAG:
                c["flag_reasons"] = [*(c.get("flag_reasons") or []), why]
            elif outcome == REJECT:
                c["reject_reasons"] = [*(c.get("reject_reasons") or []), why]
        return out
