"""The probe stage: does a source qualify at all, judging only what headers can be trusted for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from curate.config import PipelineConfig
from curate.media.probe import ProbeError, probe
from curate.records import Record
from curate.stage import VideoStage, fail, reject


@dataclass
class ProbeStage(VideoStage):
    """Writes ``video["probe"]``; rejects sources without video, too small or (by header) too short.

    Unreadable sources (empty, garbage, truncated before the first frame,
    unknown codec) are ``failed``. A missing or lying duration header is left
    to the analysis stage, which re-checks the duration it decoded.
    """

    name: ClassVar[str] = "probe"
    config: PipelineConfig = PipelineConfig()

    def process_video(self, video: Record) -> Record:
        try:
            info = probe(video["uri"])
        except ProbeError as e:
            return fail(video, f"probe: {e}")
        out = dict(video, probe=info)
        if not info["has_video"]:
            return reject(out, "no video stream" + (" (audio only)" if info["has_audio"] else ""))
        cfg = self.config.probe
        w, h = (info["height"], info["width"]) if info["rotation"] % 180 else (info["width"], info["height"])
        if w < cfg.min_width or h < cfg.min_height:
            return reject(out, f"too small: {w}x{h} < min {cfg.min_width}x{cfg.min_height}")
        duration = info["duration_s"]
        if duration is not None and duration < cfg.min_duration_s:
            return reject(out, f"too short: {duration:.2f} s < min {cfg.min_duration_s:g} s")
        return out
