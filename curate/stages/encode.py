"""Store the clips that passed the filter: MP4 bytes, or a reference to the source.

Re-reads the source (the analysis pass kept no full-size frames) and stores
exactly frames ``start_frame .. end_frame-1`` of each kept clip, checked
against its row; :func:`curate.media.encode.encode_spans` does the work (by
time after a seek on a regular timeline, by decode index otherwise). A clip
that does not check out fails the video with the reason; a short clip is
never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from curate.config import EncodeConfig
from curate.media.encode import ClipMismatch, encode_spans, reference_spans
from curate.records import Record
from curate.stage import VideoStage, fail


@dataclass
class EncodeStage(VideoStage):
    """Encode kept clips (``bytes`` mode) or record their span (``reference`` mode)."""

    name: ClassVar[str] = "encode"
    reads: ClassVar[tuple[str, ...]] = (
        "uri", "probe", "decoded", "clips", "clips.reject_reasons", "clips.clip_id", "clips.start_frame", "clips.num_frames",
        "clips.start_s", "clips.end_s", "clips.duration_s", "clips.source_fps", "clips.source_width", "clips.source_height")
    writes: ClassVar[tuple[str, ...]] = ("clips.video", "clips.video_format", "clips.width", "clips.height", "clips.fps")
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    cpus: float = 1.0

    @classmethod
    def from_config(cls, config: Any) -> "EncodeStage":
        return cls(encode=config.encode, timeout_s=config.limits.video_timeout_s)

    def process_video(self, video: Record) -> Record:
        kept = [c for c in video.get("clips", []) if not c.get("reject_reasons")]
        probe = video.get("probe") or {}
        rotation = int(probe.get("rotation") or 0)
        if self.encode.mode == "reference":
            reference_spans(kept, rotation, probe.get("sar"))
            return video
        decoded = video.get("decoded")
        # refilter has no analysis record: how regular the timeline is is unknown, so cut by index
        irregular = decoded.get("irregular") if decoded else "timeline unknown (no analysis record)"
        try:
            encode_spans(video["uri"], kept, self.encode, rotation, irregular)
        except ClipMismatch as e:
            return fail(video, "encode: ClipMismatch", f"encode: {e}")
        return video
