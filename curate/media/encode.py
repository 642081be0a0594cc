"""Encode one clip's frames to in-memory H.264 MP4 with PyAV's libx264.

Rotation and scaling run in one ffmpeg filter graph per clip (``transpose``
/ ``hflip,vflip`` then ``scale``), so full-size frames are converted once, by
the same code ffmpeg itself uses.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av

from curate.config import EncodeConfig

TIME_BASE = Fraction(1, 90000)  # keeps variable frame timing exact in MP4
_ROTATE_FILTERS = {0: [], 90: [("transpose", "cclock")], 180: [("hflip", ""), ("vflip", "")], 270: [("transpose", "clock")]}


def output_size(width: int, height: int, rotation: int, max_height: int | None) -> tuple[int, int]:
    """Display size after rotation and the ``max_height`` cap, both even (libx264 needs it)."""
    if rotation % 180:
        width, height = height, width
    if max_height and height > max_height:
        width, height = round(width * max_height / height), max_height
    return max(2, width - width % 2), max(2, height - height % 2)


class ClipEncoder:
    """Accumulates the frames of one clip and returns MP4 bytes on :meth:`finish`."""

    def __init__(self, cfg: EncodeConfig, first: av.VideoFrame, rotation: int, fps: float) -> None:
        self.width, self.height = output_size(first.width, first.height, rotation, cfg.max_height)
        self._buf = io.BytesIO()
        self._out = av.open(self._buf, mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self._stream = self._out.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = TIME_BASE
        self._stream.options = {"crf": str(cfg.crf), "preset": cfg.preset}
        self._graph = self._build_graph(first, rotation)
        self._t0: float | None = None
        self._last_pts = -1
        self.frames = 0

    def _build_graph(self, first: av.VideoFrame, rotation: int) -> av.filter.Graph:
        graph = av.filter.Graph()
        node = graph.add_buffer(width=first.width, height=first.height, format=first.format.name, time_base=TIME_BASE)
        for name, args in _ROTATE_FILTERS[rotation % 360] + [("scale", f"{self.width}:{self.height}"), ("format", "yuv420p")]:
            nxt = graph.add(name, args)
            node.link_to(nxt)
            node = nxt
        node.link_to(graph.add("buffersink"))
        graph.configure()
        return graph

    def add(self, frame: av.VideoFrame, time_s: float) -> None:
        """Encode ``frame`` shown at source time ``time_s``."""
        if self._t0 is None:
            self._t0 = time_s
        self._graph.vpush(frame)
        out = self._graph.vpull()
        pts = max(self._last_pts + 1, round((time_s - self._t0) / TIME_BASE))
        out.pts, out.time_base = pts, TIME_BASE
        self._last_pts = pts
        self._out.mux(self._stream.encode(out))
        self.frames += 1

    def finish(self) -> bytes:
        self._out.mux(self._stream.encode(None))
        self._out.close()
        return self._buf.getvalue()
