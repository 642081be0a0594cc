"""Store the clips that passed the filter: MP4 bytes, or a reference to the source.

Re-reads the source (the analysis pass kept no full-size frames) and stores
exactly frames ``start_frame .. end_frame-1`` of each kept clip, checked
against its row; :func:`curate.media.encode.encode_spans` does the work (by
time after a seek on a regular timeline, by decode index otherwise). A clip
that does not check out fails the video with the reason; a short clip is
never stored.

A long source streams: once the clips encoded so far hold ``piece_mb`` of
bytes they leave as a byte piece (``curate.records.PIECE``) that the writer
stores at once, so the bytes held per video are one piece, not the video.
An analysis piece (a long source's clips the analysis sent ahead) is encoded
like a video and leaves closed, counting the byte pieces split off it
(``curate.records.PARTS``), so the writer knows what to wait for.

With a ``latents:`` section the accepted clips also get the loader's pixels
of every bucket they fit (``_latent_pixels``, for :class:`~curate.stages.latents.LatentsStage`),
taken from the frames this decode hands the encoder: no second decode. A
streamed clip's pixels leave with its piece (the latents stage works on
pieces too), so they are not held for the rest of the video either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from curate.config import EncodeConfig, LatentsConfig
from curate.media.encode import ClipMismatch, iter_spans, reference_spans
from curate.records import OPEN, PARTS, STREAMED, Record, is_piece, piece
from curate.stage import VideoStage, fail

log = logging.getLogger(__name__)
PIXELS = "_latent_pixels"  # clip key: bucket key -> uint8 (T, 3, H, W) numpy array


@dataclass
class EncodeStage(VideoStage):
    """Encode kept clips (``bytes`` mode) or record their span (``reference`` mode)."""

    name: ClassVar[str] = "encode"
    reads: ClassVar[tuple[str, ...]] = (
        "uri", "probe", "decoded", "clips", "clips.reject_reasons", "clips.clip_id", "clips.start_frame", "clips.num_frames",
        "clips.start_s", "clips.end_s", "clips.duration_s", "clips.source_fps", "clips.source_width", "clips.source_height")
    writes: ClassVar[tuple[str, ...]] = ("clips.video", "clips.video_format", "clips.width", "clips.height", "clips.fps")
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    latents: LatentsConfig | None = None  # set: accepted clips also get their buckets' pixels
    cpus: float = 1.0
    piece_mb: float = 64.0  # clip bytes sent on to the writer at a time (``resources.encode.piece_mb``)

    @classmethod
    def from_config(cls, config: Any) -> "EncodeStage":
        return cls(encode=config.encode, latents=config.latents, timeout_s=config.limits.video_timeout_s)

    def outputs(self) -> tuple[str, ...]:
        return self.writes + ((f"clips.{PIXELS}",) if self.latents else ())

    def stream_video(self, video: Record) -> Iterator[Record]:
        kept = [c for c in video.get("clips", []) if not c.get("reject_reasons")]
        # what goes to clips/ (flagged clips wait for review): the clips `curate latents` covers
        accepted = {c["clip_id"] for c in kept if not c.get("flag_reasons")} if self.latents else set()
        probe = video.get("probe") or {}
        rotation = int(probe.get("rotation") or 0)
        if self.encode.mode == "reference":
            reference_spans(kept, rotation, probe.get("sar"))
            for c in kept:
                if c["clip_id"] in accepted:
                    _reference_pixels(self.latents, c, video["uri"])
            yield _closed(video, video.get("clips", []), 0)
            return
        decoded = video.get("decoded")
        # refilter has no analysis record: how regular the timeline is is unknown, so cut by index
        irregular = decoded.get("irregular") if decoded else "timeline unknown (no analysis record)"
        held: list[Record] = []
        nbytes = 0
        sent: set[int] = set()
        parts = 0
        tap = (lambda clip, stored: _tap(self.latents, clip, stored) if clip["clip_id"] in accepted else None) if accepted else None
        try:
            for clip in iter_spans(video["uri"], kept, self.encode, rotation, irregular, tap):
                held.append(clip)
                nbytes += len(clip["video"])
                if nbytes >= self.piece_mb * 2**20:
                    yield piece(video, [dict(c) for c in held])
                    parts += 1
                    for c in held:  # the piece took the bytes (and latent pixels): this record keeps none of them
                        sent.add(id(c))
                        c["video"] = None
                        c.pop(PIXELS, None)
                    held, nbytes = [], 0
        except ClipMismatch as e:
            yield fail(_closed(video, [], parts), "encode: ClipMismatch", f"encode: {e}")
            return
        yield _closed(video, [c for c in video["clips"] if id(c) not in sent], parts)


def _closed(video: Record, clips: list[Record], parts: int) -> Record:
    """What ``video`` leaves encode as: its record, or the analysis piece closed, each saying how many byte pieces went ahead.

    A record that sent none and had no analysis pieces is unchanged (a short video's record, as ever).
    """
    if is_piece(video):
        return {**{k: v for k, v in video.items() if k != OPEN}, "clips": clips, PARTS: parts}
    streamed = dict(video.get(STREAMED) or {})
    if not parts and not streamed:
        return dict(video, clips=clips)
    return dict(video, clips=clips, **{STREAMED: {"analysed": streamed.get("analysed", 0), "pieces": parts}})


def _tap(cfg: Any, clip: Record, stored: Record) -> Any:
    """The loader's targets of every bucket ``stored`` fits, filled from the frames the encoder gets; ``None`` when none fits."""
    from curate.data.decode import TargetFill
    from curate.latents import fitting, targets

    buckets = fitting(cfg, stored)
    if not buckets:
        return None
    tgs = targets(cfg, buckets)
    clip[PIXELS] = {b.key: tg.out.numpy() for b, tg in zip(buckets, tgs)}
    return TargetFill(dict(stored, video=b""), tgs)  # a stored clip is already upright: no rotation


def _reference_pixels(cfg: Any, clip: Record, uri: str) -> None:
    """``reference`` mode stores no bytes: the loader decodes the source span, and so do in-run latents (the same call)."""
    from curate.data.decode import DecodeError, decode_targets
    from curate.latents import fitting, targets

    row = dict(clip, source_uri=uri)
    buckets = fitting(cfg, row)
    if not buckets:
        return
    tgs = targets(cfg, buckets)
    try:
        decode_targets(row, tgs)
    except DecodeError as e:
        log.warning("latents: clip %s does not decode, no latents now (`curate latents` retries it): %s", clip["clip_id"], e)
        return
    clip[PIXELS] = {b.key: tg.out.numpy() for b, tg in zip(buckets, tgs)}
