"""Store the clips that passed the filter: MP4 bytes, or a reference to the source.

Re-reads the source (the analysis pass kept no full-size frames) and stores
exactly frames ``start_frame .. end_frame-1`` of each kept clip, checked
against its row; :func:`curate.media.encode.encode_spans` does the work (by
time after a seek on a regular timeline, by decode index otherwise). A clip
that does not check out fails the video with the reason; a short clip is
never stored.

A long source streams: once the clips encoded so far hold ``piece_mb`` of
bytes they leave as a clip piece (``curate.records.PIECE``) that the writer
stores at once, so the bytes held per video are one piece, not the video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from curate.config import EncodeConfig
from curate.media.encode import ClipMismatch, iter_spans, reference_spans
from curate.records import STREAMED, Record, piece
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
    piece_mb: float = 64.0  # clip bytes sent on to the writer at a time (``resources.encode.piece_mb``)

    @classmethod
    def from_config(cls, config: Any) -> "EncodeStage":
        return cls(encode=config.encode, timeout_s=config.limits.video_timeout_s)

    def stream_video(self, video: Record) -> Iterator[Record]:
        kept = [c for c in video.get("clips", []) if not c.get("reject_reasons")]
        probe = video.get("probe") or {}
        rotation = int(probe.get("rotation") or 0)
        if self.encode.mode == "reference":
            reference_spans(kept, rotation, probe.get("sar"))
            yield video
            return
        decoded = video.get("decoded")
        # refilter has no analysis record: how regular the timeline is is unknown, so cut by index
        irregular = decoded.get("irregular") if decoded else "timeline unknown (no analysis record)"
        held: list[Record] = []
        nbytes = 0
        sent: set[int] = set()
        counts = {"pieces": 0, "clips": 0, "review": 0}  # what the pieces hold, by table (kept clips only)
        try:
            for clip in iter_spans(video["uri"], kept, self.encode, rotation, irregular):
                held.append(clip)
                nbytes += len(clip["video"])
                if nbytes >= self.piece_mb * 2**20:
                    yield piece(video, [dict(c) for c in held])
                    counts["pieces"] += 1
                    for c in held:  # the piece took the bytes: this record keeps none of them
                        counts["review" if c.get("flag_reasons") else "clips"] += 1
                        sent.add(id(c))
                        c["video"] = None
                    held, nbytes = [], 0
        except ClipMismatch as e:
            yield fail(video, "encode: ClipMismatch", f"encode: {e}")
            return
        if not sent:
            yield video
            return
        yield dict(video, clips=[c for c in video["clips"] if id(c) not in sent], **{STREAMED: counts})
