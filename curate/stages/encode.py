"""Store the clips that passed the filter: MP4 bytes, or a reference to the source.

Re-reads the source (the analysis pass kept no full-size frames). A clip is
frames ``start_frame .. end_frame-1`` of the source in decode order, and the
encode stores exactly those, found one of two ways:

* **By time, after a seek** (sources whose timeline is regular: every
  frame's time is its own pts, increasing, see
  :class:`~curate.media.decode.Timeline`). Kept clips are visited in order;
  one decode covers each run of clips that lie close together, seeking only
  across long gaps. The clip starts at the frame whose time is ``start_s``
  (times come from the function the analysis used) and takes
  ``num_frames`` frames from there; the seek is verified to land before the
  clip (MPEG-TS/PS seeks land late).
* **By decode index, from the start** when the timeline is irregular
  (frames without timestamps, resets, faulty pts: MKV with negative
  timestamps, concatenated TS, ``box.mp4``), when it is unknown (refilter
  has no analysis record) or when a seek's result does not check out.

Either way the clip is checked before it is stored: frames taken ==
``num_frames``, first frame at ``start_s`` and last ending at ``end_s``
(within a quarter frame), and every taken frame was encoded and muxed
(fewer only by ``encode.max_fps`` thinning, which then sets ``fps`` to that
rate). Anything else fails the video with the reason; a short clip is never
stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from curate.config import PipelineConfig
from curate.media.encode import ClipEncoder, output_size
from curate.records import Record
from curate.stage import VideoStage, fail

log = logging.getLogger(__name__)

SEEK_GAP_S = 5.0  # decode through gaps shorter than this rather than seek


class ClipMismatch(Exception):
    """What the decode yields for a clip differs from the clip's row."""


def _runs(clips: list[Record]) -> list[list[Record]]:
    runs: list[list[Record]] = []
    for c in sorted(clips, key=lambda c: c["start_s"]):
        if runs and c["start_s"] - runs[-1][-1]["end_s"] < SEEK_GAP_S:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


class _Clip:
    """One clip being taken from the decode: counts source frames, thins, encodes."""

    def __init__(self, clip: Record, cfg, frame, rotation: int, sar) -> None:  # noqa: ANN001
        self.clip, self.cfg = clip, cfg
        fps = float(clip["source_fps"] or 0.0)
        self.thin = bool(cfg.max_fps and fps > cfg.max_fps)
        self.enc = ClipEncoder(cfg, frame, rotation, cfg.max_fps if self.thin else fps, sar)
        self.taken = self.kept = 0
        self.first_s: float | None = None
        self.next_slot = 0.0

    def take(self, df) -> bool:  # noqa: ANN001 - DecodedFrame
        """Add source frame ``df``; True once the clip has all its frames."""
        if self.first_s is None:
            self.first_s = self.next_slot = df.time_s
        self.taken += 1
        q = 0.25 * (df.end_s - df.time_s)
        if not self.thin or df.time_s >= self.next_slot - q:
            self.next_slot += 1.0 / self.cfg.max_fps if self.thin else 0.0
            self.enc.add(df.frame, df.time_s)
            self.kept += 1
        self.last_end = df.end_s
        return self.taken == self.clip["num_frames"]

    def finish(self) -> None:
        """Check the clip against its row and store it (see the module docstring)."""
        c, enc = self.clip, self.enc
        tol = 0.25 * c["duration_s"] / max(1, c["num_frames"])  # a quarter of a mean frame
        if self.taken != c["num_frames"]:
            raise ClipMismatch(f"{self.taken} source frames for clip {c['clip_id']}, its row says {c['num_frames']}")
        if abs(self.first_s - c["start_s"]) > tol or abs(self.last_end - c["end_s"]) > tol:
            raise ClipMismatch(f"clip {c['clip_id']} decodes as {self.first_s:.3f}-{self.last_end:.3f}s, "
                               f"its row says {c['start_s']:.3f}-{c['end_s']:.3f}s")
        data = enc.finish(c["end_s"])
        if enc.frames != self.kept or enc.packets != self.kept:
            raise ClipMismatch(f"clip {c['clip_id']}: {self.kept} frames sent to the encoder, {enc.frames} encoded, {enc.packets} muxed")
        c["video"], c["video_format"] = data, "mp4"
        c["width"], c["height"] = enc.width, enc.height
        if self.thin:  # the stored clip's rate; its frame count is round(duration_s * fps)
            c["fps"] = float(self.cfg.max_fps)


@dataclass
class EncodeStage(VideoStage):
    """Encode kept clips (``bytes`` mode) or record their span (``reference`` mode)."""

    name = "encode"
    config: PipelineConfig = PipelineConfig()

    def process_video(self, video: Record) -> Record:
        kept = [c for c in video.get("clips", []) if not c.get("reject_reasons")]
        probe = video.get("probe") or {}
        rotation = int(probe.get("rotation") or 0)
        if self.config.encode.mode == "reference":
            for c in kept:
                c["video"], c["video_format"] = None, "reference"
                c["width"], c["height"] = output_size(c["source_width"], c["source_height"], rotation, None, probe.get("sar"))
            return video
        decoded = video.get("decoded")
        # refilter has no analysis record: how regular the timeline is is unknown, so cut by index
        irregular = decoded.get("irregular") if decoded else "timeline unknown (no analysis record)"
        runs = _runs(kept) if not irregular else ([sorted(kept, key=lambda c: c["start_frame"])] if kept else [])
        for run in runs:
            try:
                self._encode_run(video["uri"], run, rotation, by_index=bool(irregular))
            except ClipMismatch as e:
                if irregular:
                    return fail(video, "encode: ClipMismatch", f"encode: {e}")
                log.warning("%s: %s after a seek; cutting by decode index from the start", video["uri"], e)
                try:
                    self._encode_run(video["uri"], run, rotation, by_index=True)
                except ClipMismatch as e2:
                    return fail(video, "encode: ClipMismatch", f"encode: {e2}")
        return video

    def _encode_run(self, uri: str, run: list[Record], rotation: int, by_index: bool) -> None:
        """Encode the clips of ``run`` (sorted, not overlapping) from one decode; raises :class:`ClipMismatch`."""
        from curate.media.decode import iter_frames

        cfg = self.config.encode
        pending = list(run)
        cur: _Clip | None = None
        timeline: list = []
        frames = iter_frames(uri, timeline=timeline) if by_index else iter_frames(uri, start_s=run[0]["start_s"], timeline=timeline)
        for df in frames:
            if cur is None:
                if not pending:
                    break
                nxt = pending[0]
                if by_index:
                    if df.index < nxt["start_frame"]:
                        continue
                    if df.index > nxt["start_frame"]:
                        raise ClipMismatch(f"clip {nxt['clip_id']}: decode skipped frame {nxt['start_frame']}")
                else:
                    q = 0.25 * (df.end_s - df.time_s)
                    if df.time_s < nxt["start_s"] - q:
                        continue
                    if df.time_s > nxt["start_s"] + q:
                        raise ClipMismatch(f"no frame at {nxt['start_s']:.3f}s for clip {nxt['clip_id']} (next frame at {df.time_s:.3f}s)")
                cur = _Clip(pending.pop(0), cfg, df.frame, rotation, timeline[0].sar)
            if cur.take(df):
                if not by_index and not timeline[0].regular:
                    raise ClipMismatch(f"timeline after the seek is irregular ({timeline[0].irregular})")
                cur.finish()
                cur = None
                if not pending:
                    break  # decode no further: a truncated source may raise on the next packet
        if cur is not None:
            cur.finish()  # raises: the source ended inside the clip
        if pending:
            raise ClipMismatch(f"source ended before clip {pending[0]['clip_id']} at {pending[0]['start_s']:.3f}s "
                               f"(frame {pending[0]['start_frame']})")
