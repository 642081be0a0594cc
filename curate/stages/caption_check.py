"""Does the caption describe the frames? CLIP similarity in three bands.

Each clip's caption is compared with each of its sampled frames; the mean and
the minimum cosine similarity are stored raw (``clip_sim_mean``/``clip_sim_min``)
and the configured statistic decides: pass, flag for human review, or reject.
Reasons read like the filter's: ``clip_sim_mean 0.180 < pass_min 0.22``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curate.models.settings import CaptionCheckConfig
from curate.records import Record
from curate.stages.batched import ClipModelStage, clips_of, copy_clips


def judge(sim_mean: float, sim_min: float, cfg: CaptionCheckConfig) -> tuple[str, str | None]:
    """``(outcome, reason)`` for one clip's similarities; outcome is pass, flag or reject."""
    name, value = f"clip_sim_{cfg.statistic}", sim_mean if cfg.statistic == "mean" else sim_min
    if value < cfg.reject_below:
        return "reject", f"{name} {value:.3f} < reject_below {cfg.reject_below:g}"
    if value < cfg.pass_min:
        return "flag", f"{name} {value:.3f} < pass_min {cfg.pass_min:g}"
    return "pass", None


@dataclass
class CaptionCheckStage(ClipModelStage):
    """Writes ``clip_sim_mean``, ``clip_sim_min``, ``caption_check`` and ``caption_check_reason``.

    A flagged clip gets the reason appended to ``flag_reasons`` (it goes to the
    review queue), a rejected one to ``reject_reasons``. Clips without a caption
    or without frame embeddings are not judged (``caption_check`` stays ``None``).
    """

    name = "caption_check"
    check: CaptionCheckConfig = field(default_factory=CaptionCheckConfig)

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
            outcome, reason = judge(c["clip_sim_mean"], c["clip_sim_min"], self.check)
            c["caption_check"], c["caption_check_reason"] = outcome, reason
            if outcome == "flag":
                c["flag_reasons"] = [*(c.get("flag_reasons") or []), reason]
            elif outcome == "reject":
                c["reject_reasons"] = [*(c.get("reject_reasons") or []), reason]
        return out
