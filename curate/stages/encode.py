"""Store the clips that passed the filter: MP4 bytes, or a reference to the source.

Re-reads the source (the analysis pass kept no full-size frames): kept clips
are visited in order, and one decode covers each run of kept clips that lie
close together, seeking only across long gaps. Frames are chosen by their
presentation time, computed exactly as the analysis pass computed it, so
boundaries are frame-exact on variable-frame-rate sources too.
"""

from __future__ import annotations

from dataclasses import dataclass

from curate.config import PipelineConfig
from curate.media.encode import ClipEncoder, output_size
from curate.records import Record
from curate.stage import VideoStage

SEEK_GAP_S = 5.0  # decode through gaps shorter than this rather than seek


def _runs(clips: list[Record]) -> list[list[Record]]:
    runs: list[list[Record]] = []
    for c in sorted(clips, key=lambda c: c["start_s"]):
        if runs and c["start_s"] - runs[-1][-1]["end_s"] < SEEK_GAP_S:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


@dataclass
class EncodeStage(VideoStage):
    """Encode kept clips (``bytes`` mode) or record their span (``reference`` mode)."""

    name = "encode"
    config: PipelineConfig = PipelineConfig()

    def process_video(self, video: Record) -> Record:
        kept = [c for c in video.get("clips", []) if not c.get("reject_reasons")]
        rotation = int((video.get("probe") or {}).get("rotation") or 0)
        if self.config.encode.mode == "reference":
            for c in kept:
                c["video"], c["video_format"] = None, "reference"
                c["width"], c["height"] = output_size(c["source_width"], c["source_height"], rotation, None)
            return video
        for run in _runs(kept):
            self._encode_run(video["uri"], run, rotation)
        return video

    def _encode_run(self, uri: str, run: list[Record], rotation: int) -> None:
        from curate.media.decode import iter_frames

        cfg = self.config.encode
        pending = list(run)
        clip, enc, next_slot = None, None, 0.0
        for df in iter_frames(uri, start_s=run[0]["start_s"]):
            q = 0.25 * (df.end_s - df.time_s)  # tolerance: a quarter frame
            if clip is not None and df.time_s >= clip["end_s"] - q:
                self._finish(clip, enc)
                clip, enc = None, None
            if clip is None:
                if not pending:
                    break
                if df.time_s < pending[0]["start_s"] - q:
                    continue
                clip = pending.pop(0)
                fps = clip["source_fps"]
                if cfg.max_fps and fps > cfg.max_fps:
                    fps = cfg.max_fps
                enc, next_slot = ClipEncoder(cfg, df.frame, rotation, fps), df.time_s
            if cfg.max_fps and df.time_s < next_slot - q:
                continue
            next_slot += 1.0 / cfg.max_fps if cfg.max_fps else 0.0
            enc.add(df.frame, df.time_s)
        if clip is not None:
            self._finish(clip, enc)
        if pending:
            raise RuntimeError(f"source ended before clip {pending[0]['clip_id']} at {pending[0]['start_s']:.3f}s")

    @staticmethod
    def _finish(clip: Record, enc: ClipEncoder) -> None:
        clip["video"], clip["video_format"] = enc.finish(), "mp4"
        clip["width"], clip["height"] = enc.width, enc.height
        if clip["duration_s"] > 0:  # average rate of what was stored (max_fps may thin it)
            clip["fps"] = enc.frames / clip["duration_s"]
