"""Encode one clip's frames to in-memory H.264 MP4 with PyAV's libx264.

Rotation, the display aspect and scaling run in one ffmpeg filter graph per
clip (``transpose`` / ``hflip,vflip``, then ``scale`` to the display size and
``setsar=1``), so full-size frames are converted once, by the same code
ffmpeg itself uses. Stored clips have square pixels: a source with a sample
aspect ratio (720x480 at SAR 32:27) is stored at its display aspect
(854x480), not squeezed.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av

from curate.config import EncodeConfig

TIME_BASE = Fraction(1, 90000)  # keeps variable frame timing exact in MP4
_ROTATE_FILTERS = {0: [], 90: [("transpose", "cclock")], 180: [("hflip", ""), ("vflip", "")], 270: [("transpose", "clock")]}


def display_size(width: int, height: int, rotation: int, sar: float | Fraction | None = None) -> tuple[int, int]:
    """Displayed size of coded ``width`` x ``height`` pixels: the width scaled by the SAR (to an even number), then rotated."""
    if sar and sar > 0 and abs(float(sar) - 1.0) > 1e-3:
        width = max(2, 2 * round(width * float(sar) / 2))
    return (height, width) if rotation % 180 else (width, height)


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
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self._stream = self._out.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.sample_aspect_ratio = Fraction(1, 1)  # square pixels, said explicitly
        self._stream.codec_context.time_base = TIME_BASE
        self._stream.options = {"crf": str(cfg.crf), "preset": cfg.preset}
        self._graph: av.filter.Graph | None = None
        self._graph_key: tuple[int, int, str] | None = None
        self._t0: float | None = None
        self._last_pts = -1
        self._pending: tuple[av.VideoFrame, float] | None = None
        self.frames = 0  # frames encoded
        self.packets = 0  # packets muxed

    def _filter(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` rotated and scaled to the output size; a new graph when the coded size changes mid-stream."""
        key = (frame.width, frame.height, frame.format.name)
        if key != self._graph_key:
            graph = av.filter.Graph()
            node = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=TIME_BASE)
            chain = _ROTATE_FILTERS[self._rotation % 360] + [("scale", f"{self.width}:{self.height}"), ("setsar", "1"), ("format", "yuv420p")]
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
        self._mux(self._stream.encode(out))
        self.frames += 1

    def _mux(self, packets: list[av.Packet]) -> None:
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
