"""Encode clips of a source to in-memory H.264 MP4 with PyAV's libx264.

:func:`encode_spans` takes the frames of each clip from the source and
stores exactly those (see its docstring); it is what the encode stage runs
and what a rewrite (refilter, dedup) runs for clips that become kept.
:class:`ClipEncoder` encodes one clip's frames. Rotation, the display aspect and scaling run in one ffmpeg filter graph per
clip (``transpose`` / ``hflip,vflip``, then ``scale`` to the display size and
``setsar=1``), so full-size frames are converted once, by the same code
ffmpeg itself uses. Stored clips have square pixels: a source with a sample
aspect ratio (720x480 at SAR 32:27) is stored at its display aspect
(854x480), not squeezed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Iterator, Protocol

import av

from curate.config import EncodeConfig
from curate.media.decode import FALLBACK_FPS
from curate.media.geometry import display_size
from curate.media.x264 import THREAD_TYPE, THREADS, x264_params

__all__ = ["ClipEncoder", "ClipMismatch", "display_size", "encode_spans", "output_size", "reference_spans"]

log = logging.getLogger(__name__)
Clip = dict[str, Any]  # a clip row: start_frame, num_frames, start_s, end_s, duration_s, source_fps, clip_id...


class FrameTap(Protocol):
    """Sees every frame a clip's encoder is given (``curate.data.decode.TargetFill`` for in-run latents)."""

    def push(self, frame: av.VideoFrame, t: float) -> bool: ...

    def close(self) -> None: ...


# Called once per clip as its encoder starts: the clip, and its row as it will be stored (width, height, fps).
TapFactory = Callable[[Clip, Clip], "FrameTap | None"]
SEEK_GAP_S = 5.0  # decode through gaps shorter than this rather than seek

TIME_BASE = Fraction(1, 90000)  # keeps variable frame timing exact in MP4
# Chroma siting of the stored clips as their decoder reports it (x264 writes none; H.264 means left). Only a
# tag on the frames x264 gets, so that a frame converts to RGB as the same frame decoded from the clip does
# (swscale reads the siting): in-run latents see what the loader sees of a lossless copy of the clip.
STORED_CHROMA = "left"
_ROTATE_FILTERS = {0: [], 90: [("transpose", "cclock")], 180: [("hflip", ""), ("vflip", "")], 270: [("transpose", "clock")]}


def output_size(width: int, height: int, rotation: int, max_height: int | None, sar: float | Fraction | None = None) -> tuple[int, int]:
    """Stored size: display size (SAR, rotation) capped at ``max_height``, both even (libx264 needs it)."""
    width, height = display_size(width, height, rotation, sar)
    if max_height and height > max_height:
        width, height = round(width * max_height / height), max_height
    return max(2, width - width % 2), max(2, height - height % 2)


class ClipEncoder:
    """Accumulates the frames of one clip and returns MP4 bytes on :meth:`finish`.

    A frame is encoded when the next one arrives (or at :meth:`finish`), so
    that each stored frame lasts until the next one and the last one until
    the clip's end: the MP4's duration is the clip's span.
    """

    def __init__(self, cfg: EncodeConfig, first: av.VideoFrame, rotation: int, fps: float, sar: float | Fraction | None = None) -> None:
        self.width, self.height = output_size(first.width, first.height, rotation, cfg.max_height, sar)
        self._rotation = rotation
        self._buf = io.BytesIO()
        self._out = av.open(self._buf, mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(FALLBACK_FPS)
        self._stream = self._out.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.sample_aspect_ratio = Fraction(1, 1)  # square pixels, said explicitly
        self._stream.codec_context.time_base = TIME_BASE
        self._stream.options = {"crf": str(cfg.crf), "preset": cfg.preset, **x264_params()}
        self._stream.codec_context.thread_count, self._stream.codec_context.thread_type = THREADS, THREAD_TYPE
        self._graph: av.filter.Graph | None = None
        self._graph_key: tuple[int, int, str] | None = None
        self._t0: float | None = None
        self._last_pts = -1
        self._pending: tuple[av.VideoFrame, float] | None = None
        self._durations: dict[int, int] = {}  # pts -> duration of each frame sent, until its packet comes back
        self.frames = 0  # frames encoded
        self.packets = 0  # packets muxed
        self.tap: FrameTap | None = None

    def _filter(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` rotated and scaled to the output size; a new graph when the coded size changes mid-stream."""
        key = (frame.width, frame.height, frame.format.name)
        if key != self._graph_key:
            graph = av.filter.Graph()
            node = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=TIME_BASE)
            chain = _ROTATE_FILTERS[self._rotation % 360] + [("scale", f"{self.width}:{self.height}"), ("setsar", "1"), ("format", "yuv420p"),
                                                                ("setparams", f"chroma_location={STORED_CHROMA}")]
            for name, args in chain:
                nxt = graph.add(name, args)
                node.link_to(nxt)
                node = nxt
            node.link_to(graph.add("buffersink"))
            graph.configure()
            self._graph, self._graph_key = graph, key
        self._graph.vpush(frame)
        return self._graph.vpull()

    def add(self, frame: av.VideoFrame, time_s: float) -> None:
        """Add ``frame`` shown at source time ``time_s`` (times increase)."""
        if self._t0 is None:
            self._t0 = time_s
        if self._pending is not None:
            self._encode(*self._pending, time_s)
        self._pending = (self._filter(frame), time_s)

    def _encode(self, out: av.VideoFrame, time_s: float, end_s: float) -> None:
        pts = max(self._last_pts + 1, round((time_s - self._t0) / TIME_BASE))
        out.pts, out.time_base = pts, TIME_BASE
        out.duration = max(1, round((end_s - self._t0) / TIME_BASE) - pts)
        self._last_pts = pts
        self._durations[pts] = out.duration
        if self.tap is not None:  # the frame as x264 gets it, at the time the stored clip will give it
            self.tap.push(out, float(pts * TIME_BASE))
        self._mux(self._stream.encode(out))
        self.frames += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        # libx264's packets do not carry their own frame's duration (measured: each had its predecessor's, so a clip
        # cut before a short last frame stored it a frame too long); each gets the duration given with its frame.
        for p in packets:
            p.duration = self._durations.pop(p.pts, p.duration)
        self.packets += len(packets)
        self._out.mux(packets)

    def finish(self, end_s: float) -> bytes:
        """Close the clip, whose last frame lasts until source time ``end_s``; returns the MP4 bytes."""
        if self._pending is not None:
            self._encode(*self._pending, max(end_s, self._pending[1]))
            self._pending = None
        self._mux(self._stream.encode(None))
        self._out.close()
        return self._buf.getvalue()


class ClipMismatch(Exception):
    """What the decode yields for a clip differs from the clip's row."""


def _runs(clips: list[Clip]) -> list[list[Clip]]:
    runs: list[list[Clip]] = []
    for c in sorted(clips, key=lambda c: c["start_s"]):
        if runs and c["start_s"] - runs[-1][-1]["end_s"] < SEEK_GAP_S:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


class _Clip:
    """One clip being taken from the decode: counts source frames, thins, encodes."""

    def __init__(self, clip: Clip, cfg: EncodeConfig, frame: av.VideoFrame, rotation: int, sar: Any, tap: TapFactory | None) -> None:
        self.clip, self.cfg = clip, cfg
        fps = float(clip["source_fps"] or 0.0)
        self.thin = bool(cfg.max_fps and fps > cfg.max_fps)
        self.enc = ClipEncoder(cfg, frame, rotation, cfg.max_fps if self.thin else fps, sar)
        if tap is not None:
            stored = dict(clip, width=self.enc.width, height=self.enc.height, fps=float(cfg.max_fps) if self.thin else clip.get("fps"))
            self.enc.tap = tap(clip, stored)
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
        """Check the clip against its row and store it (see :func:`encode_spans`)."""
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
        if enc.tap is not None:
            enc.tap.close()
        c["video"], c["video_format"] = data, "mp4"
        c["width"], c["height"] = enc.width, enc.height
        if self.thin:  # the stored clip's rate; its frame count is round(duration_s * fps)
            c["fps"] = float(self.cfg.max_fps)

def reference_spans(clips: list[Clip], rotation: int, sar: Any = None) -> None:
    """``reference`` mode: no bytes; each clip records its span and the size it would be stored at."""
    for c in clips:
        c["video"], c["video_format"] = None, "reference"
        c["width"], c["height"] = output_size(c["source_width"], c["source_height"], rotation, None, sar)


def encode_spans(uri: str, clips: list[Clip], cfg: EncodeConfig, rotation: int, irregular: str | None,
                 tap: TapFactory | None = None) -> None:
    """Store every clip of ``clips`` (rows of source ``uri``) as MP4 bytes, in place; raises :class:`ClipMismatch`.

    A clip is frames ``start_frame .. end_frame-1`` of the source in decode
    order, found one of two ways:

    * **By time, after a seek** (``irregular`` is ``None``: every frame's time
      is its own pts, increasing, see :class:`~curate.media.decode.Timeline`).
      Clips are visited in order; one decode covers each run of clips that lie
      close together, seeking only across long gaps. The clip starts at the
      frame whose time is ``start_s`` (times come from the function the
      analysis used) and takes ``num_frames`` frames from there; the seek is
      verified to land before the clip (MPEG-TS/PS seeks land late).
    * **By decode index, from the start** when the timeline is irregular
      (``irregular`` says why: frames without timestamps, resets, faulty pts),
      unknown, or when a seek's result does not check out.

    Either way the clip is checked before it is stored: frames taken ==
    ``num_frames``, first frame at ``start_s`` and last ending at ``end_s``
    (within a quarter frame), and every taken frame was encoded and muxed
    (fewer only by ``max_fps`` thinning, which then sets ``fps`` to that rate).
    Sets ``video``, ``video_format``, ``width``, ``height`` (and ``fps`` when thinned).
    ``tap`` (in-run latents) is asked for a :class:`FrameTap` per clip, which
    then sees each frame as the encoder gets it: no second decode.
    """
    for _ in iter_spans(uri, clips, cfg, rotation, irregular, tap):
        pass


def iter_spans(uri: str, clips: list[Clip], cfg: EncodeConfig, rotation: int, irregular: str | None,
               tap: TapFactory | None = None) -> Iterator[Clip]:
    """:func:`encode_spans` as a stream: yields each clip as soon as it is stored and checked, so a caller can send it on
    (with ``tap``, its frame tap closed: the targets it filled are complete).

    A run whose seek does not check out is redone by decode index for its
    clips not yet yielded (those yielded checked out), so no clip comes twice.
    """
    runs = _runs(clips) if not irregular else ([sorted(clips, key=lambda c: c["start_frame"])] if clips else [])
    for run in runs:
        done: set[int] = set()
        try:
            for clip in _encode_run(uri, run, cfg, rotation, by_index=bool(irregular), tap=tap):
                done.add(id(clip))
                yield clip
        except ClipMismatch as e:
            if irregular:
                raise
            log.warning("%s: %s after a seek; cutting by decode index from the start", uri, e)
            # a clip not yet yielded is tapped again from its first frame (the factory makes it new targets)
            yield from _encode_run(uri, [c for c in run if id(c) not in done], cfg, rotation, by_index=True, tap=tap)


def _encode_run(uri: str, run: list[Clip], cfg: EncodeConfig, rotation: int, by_index: bool,
                tap: TapFactory | None = None) -> Iterator[Clip]:
    """Encode the clips of ``run`` (sorted, not overlapping) from one decode, yielding each when stored; raises :class:`ClipMismatch`."""
    from curate.media.decode import iter_frames

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
            cur = _Clip(pending.pop(0), cfg, df.frame, rotation, timeline[0].sar, tap)
        if cur.take(df):
            if not by_index and not timeline[0].regular:
                raise ClipMismatch(f"timeline after the seek is irregular ({timeline[0].irregular})")
            cur.finish()
            yield cur.clip
            cur = None
            if not pending:
                break  # decode no further: a truncated source may raise on the next packet
    if cur is not None:
        cur.finish()  # raises: the source ended inside the clip
    if pending:
        raise ClipMismatch(f"source ended before clip {pending[0]['clip_id']} at {pending[0]['start_s']:.3f}s "
                           f"(frame {pending[0]['start_frame']})")
