"""The one streaming decode, and cheap small frames from it.

Every consumer of pixels (shot detection, motion, quality, sampling, and the
encode stage re-reading kept spans) goes through :func:`iter_frames`, so frame
times are computed by one function on every path: a clip's ``start_s`` found
during analysis is exactly the ``time_s`` the encoder sees after seeking.

Full-size frames are never converted with swscale on the common path:
:func:`small_luma`/:func:`small_rgb` read the decoder's planes as numpy views
(no copy), pick pixels nearest-neighbour down to twice the target size, area-
average that, and convert to RGB only once small. swscale on a full 1080p
frame costs about half of the decode itself; this costs ~0.1 ms.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av
import cv2
import numpy as np

from curate.media.uri import is_remote, local_path

# Counters of decode passes per URI opened by :func:`count_decode_passes` (tests assert that the
# analysis decodes a source once); empty, so free, unless a test is counting.
_PASS_COUNTERS: list[Counter[str]] = []


@contextmanager
def count_decode_passes() -> Iterator[Counter[str]]:
    """Count the decode passes per URI that start while the block runs (a test hook).

    Yields:
        A ``Counter`` of URI -> passes, filled as :func:`iter_frames` is called.
    """
    counter: Counter[str] = Counter()
    _PASS_COUNTERS.append(counter)
    try:
        yield counter
    finally:
        _PASS_COUNTERS.remove(counter)

# The frame rate assumed where a stream states none (a header without a rate, a
# detector built before any video is seen); never used once frames are timed.
FALLBACK_FPS = 25.0

_MAX_BAD_PACKETS = 50  # consecutive undecodable packets before giving up


@dataclass
class DecodedFrame:
    """One decoded frame and its presentation interval in the source timeline.

    ``index`` is the 0-based decode-order position from the start of the
    stream, or -1 after a seek (the position is then unknown).
    """

    index: int
    time_s: float
    end_s: float
    frame: av.VideoFrame


@contextmanager
def open_input(uri: str, analysis: bool = False) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream | None]]:
    """Open a local path or fsspec URI; yields ``(container, first video stream or None)``.

    Non-local URIs (``s3://``, ``gs://``, ``memory://`` ...) are opened with
    ``fsspec.open(uri, "rb")`` and the file object is handed to FFmpeg, so
    remote sources stream without a local copy.
    """
    fobj = None
    if is_remote(uri):
        import fsspec

        fobj = fsspec.open(uri, "rb").open()
        target = fobj
    else:
        target = local_path(uri)
    try:
        container = av.open(target, mode="r")
    except BaseException:
        if fobj is not None:
            fobj.close()
        raise
    try:
        stream = container.streams.video[0] if container.streams.video else None
        if stream is not None:
            stream.thread_type = "AUTO"
            # More decode threads than cores keep frame threads busy while the
            # consumer works (measured: +15% analysis throughput on 2 cores).
            if stream.codec_context is not None:  # None: no decoder for this codec
                stream.codec_context.thread_count = max(4, os.cpu_count() or 1)
                if analysis:
                    # Frames for analysis are looked at a few hundred pixels wide, where
                    # H.264's deblocking filter changes nothing visible; skipping it
                    # saves ~20% of decode CPU. Stored clips always decode fully.
                    stream.codec_context.options = {**stream.codec_context.options, "skip_loop_filter": "all"}
        yield container, stream
    finally:
        container.close()
        if fobj is not None:
            fobj.close()


def stream_fps(stream: av.video.stream.VideoStream) -> float:
    """The stream's average (else guessed, else base) frame rate; 0.0 when unknown."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    return 0.0


def stream_sar(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's sample (pixel) aspect ratio; 1 when unset or invalid."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio if stream.codec_context else None):
        if sar and sar > 0:
            return Fraction(sar)
    return Fraction(1)


# FFmpeg's AVFMT_TS_DISCONT: formats (MPEG-TS/PS) whose timestamps may jump anywhere.
_TS_DISCONT = 0x0200
_DISCONT_JUMP_S = 10.0  # a forward jump larger than this in such a format is a discontinuity (as ffmpeg's CLI)


class Timeline:
    """Presentation times of decoded frames: the one function analysis and encode share.

    Per frame: FFmpeg's ``best_effort_timestamp`` rule (``guess_correct_pts`` in
    libavcodec; PyAV does not expose the field, so it is recomputed here from
    the frame's pts and its packet's dts: pts unless pts have been faulty
    more often than dts). Times must increase: a frame without any
    timestamp, or one whose time does not increase (a timestamp reset or
    backward jump; in MPEG-TS/PS also a forward jump over 10 s), continues
    the previous time by one frame, and later frames keep that offset.

    ``regular`` stays True while every time was the frame's own pts and they
    increased: then a frame's time depends on that frame alone and a seek
    decodes the same times as a pass from the start. Otherwise ``irregular``
    says why, and spans must be cut by decode index from the start.
    """

    def __init__(self, stream: av.video.stream.VideoStream, container: av.container.InputContainer | None = None) -> None:
        self.tb = stream.time_base or Fraction(1, 1)
        self.step = 1.0 / (stream_fps(stream) or FALLBACK_FPS)
        self.sar = stream_sar(stream)
        flags = getattr(getattr(container, "format", None), "flags", 0) or 0
        self._max_jump = _DISCONT_JUMP_S if flags & _TS_DISCONT else float("inf")
        self._faulty_pts = self._faulty_dts = 0
        self._last_pts: int | None = None
        self._last_dts: int | None = None
        self._offset = 0.0
        self.prev: float | None = None
        self.irregular: str | None = None

    @property
    def regular(self) -> bool:
        return self.irregular is None

    def _best_effort(self, pts: int | None, dts: int | None) -> int | None:
        # libavcodec/decode.c guess_correct_pts()
        if dts is not None:
            self._faulty_dts += self._last_dts is not None and dts <= self._last_dts
            self._last_dts = dts
        elif pts is not None:
            self._last_dts = pts
        if pts is not None:
            self._faulty_pts += self._last_pts is not None and pts <= self._last_pts
            self._last_pts = pts
        elif dts is not None:
            self._last_pts = dts
        if pts is not None and (self._faulty_pts <= self._faulty_dts or dts is None):
            return pts
        return dts

    def _flag(self, why: str) -> None:
        if self.irregular is None:
            self.irregular = why

    def time(self, frame: av.VideoFrame) -> float:
        """Presentation time (s) of the next frame in output order."""
        ts = self._best_effort(frame.pts, frame.dts)
        prev = self.prev
        if ts is None:
            self._flag("frames without timestamps")
            t = prev + self.step if prev is not None else 0.0
        else:
            if ts != frame.pts:
                self._flag("faulty pts (times from dts, as FFmpeg's best_effort_timestamp)")
            t = float(ts * self.tb) + self._offset
            if prev is not None and (t <= prev + 1e-6 or t - prev > self._max_jump):
                self._flag(f"timestamp jump at {prev:.3f}s ({t - prev:+.3f}s)")
                self._offset += prev + self.step - t
                t = prev + self.step
        self.prev = t
        return t


def iter_frames(
    uri: str,
    start_s: float | None = None,
    errors: list[str] | None = None,
    analysis: bool = False,
    timeline: list[Timeline] | None = None,
) -> Iterator[DecodedFrame]:
    """Decode the first video stream of ``uri`` once, in presentation order.

    Args:
        uri: local path or fsspec URI (see :func:`open_input`).
        start_s: seek to the keyframe before this time and skip frames whose
            ``time_s`` is earlier; ``index`` is then -1 for every frame. The
            seek is verified: when the first frame decoded after it is later
            than ``start_s`` (MPEG-TS/PS have no index, so seeks land late) it
            seeks further back, and after that decodes from the start. Only
            meaningful on a regular timeline (see :class:`Timeline`).
        errors: if given, messages of skipped undecodable packets are appended
            (a few corrupt packets do not stop the pass; many in a row raise).
        analysis: decode for analysis only (skips the in-loop deblocking
            filter); never for frames that are stored.
        timeline: if given, the :class:`Timeline` of the pass is appended
            (after the pass, its ``irregular`` says whether seeking is exact).

    ``time_s`` comes from :class:`Timeline`, ``end_s`` is the next frame's
    time, or for the last frame its own duration (else 1/fps).
    An error after some frames re-raises once the frames so far were yielded.
    """
    for counter in _PASS_COUNTERS:
        counter[uri] += 1
    if start_s is not None:
        for back in (0.0, 2.0, 10.0, 60.0):
            with open_input(uri, analysis) as (container, stream):
                if stream is None:
                    raise ValueError(f"no video stream in {uri}")
                tl = Timeline(stream, container)
                start = float(stream.start_time * tl.tb) if stream.start_time is not None else 0.0
                target = start_s - back
                if target <= start + tl.step / 2:
                    break  # the seek would go to the start anyway
                container.seek(int(target / tl.tb), stream=stream, backward=True, any_frame=False)
                with Prefetch(_decoded(container, stream, errors)) as frames:
                    first = next(frames, None)
                    # Some files flag non-IDR frames as keyframes (cockatoo.mp4): what decodes
                    # after seeking there is garbage, marked corrupt. Then decode from the start.
                    if first is None or first.is_corrupt:
                        break
                    probe = Timeline(stream, container)
                    if probe.time(first) > start_s + tl.step / 2:
                        continue  # landed after the target: seek further back
                    if timeline is not None:
                        timeline.append(tl)
                    yield from _timed(itertools.chain([first], frames), tl, start_s)
                    return
    with open_input(uri, analysis) as (container, stream):
        if stream is None:
            raise ValueError(f"no video stream in {uri}")
        tl = Timeline(stream, container)
        if timeline is not None:
            timeline.append(tl)
        with Prefetch(_decoded(container, stream, errors)) as frames:
            yield from _timed(frames, tl, start_s)

class Prefetch:
    """Run a frame generator in a background thread, a few frames ahead.

    Without it the decoder idles while the consumer works on a frame and the
    consumer idles while the decoder works: on two cores that serialisation
    cost a fifth of the analysis pass. Bounded (``depth`` frames), so memory
    stays flat; an error is re-raised after the frames decoded before it. Use
    it as a context manager inside the container's ``with`` block, so the
    thread is stopped before the container closes.
    """

    _END = object()

    def __init__(self, frames: Iterator[av.VideoFrame], depth: int = 8) -> None:
        self._frames = frames
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="curate-decode", daemon=True)

    def _run(self) -> None:
        item: object = self._END
        try:
            for frame in self._frames:
                if not self._put(frame):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            item = e
        self._put(item)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __enter__(self) -> Iterator[av.VideoFrame]:
        self._thread.start()
        return self._iter()

    def _iter(self) -> Iterator[av.VideoFrame]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _decoded(container, stream, errors: list[str] | None) -> Iterator[av.VideoFrame]:
    bad = 0
    for packet in container.demux(stream):
        try:
            frames = stream.decode(packet)
        except av.error.InvalidDataError as e:
            bad += 1
            if errors is not None:
                errors.append(str(e))
            if bad > _MAX_BAD_PACKETS:
                raise
            continue
        bad = 0
        yield from frames


def _timed(frames: Iterator[av.VideoFrame], tl: Timeline, start_s: float | None) -> Iterator[DecodedFrame]:
    """Attach times using a one-frame lookahead (a frame ends where the next begins)."""
    index = 0 if start_s is None else -1
    pending: tuple[float, av.VideoFrame] | None = None
    # half a frame: a frame whose time rounds to start_s is the frame at start_s
    floor = start_s - tl.step / 2 if start_s is not None else None

    def emit(t: float, f: av.VideoFrame, end: float) -> DecodedFrame | None:
        nonlocal index
        if floor is not None and t < floor:
            return None
        out = DecodedFrame(index, t, end, f)
        if index >= 0:
            index += 1
        return out

    def last() -> Iterator[DecodedFrame]:
        if pending is not None:
            pt, pf = pending
            if (d := emit(pt, pf, pt + _duration(pf, tl))) is not None:
                yield d

    try:
        for f in frames:
            t = tl.time(f)
            if pending is not None:
                pt, pf = pending
                if (d := emit(pt, pf, t)) is not None:
                    yield d
            pending = (t, f)
    except Exception:
        yield from last()  # frames decoded before the error still count
        raise
    yield from last()


def _duration(frame: av.VideoFrame, tl: Timeline) -> float:
    return float(frame.duration * tl.tb) if frame.duration else tl.step


# --- small frames -------------------------------------------------------------

# pix_fmt -> (log2 chroma subsampling x, y, bit depth); all planar Y, U, V.
_PLANAR = {
    "yuv420p": (1, 1, 8), "yuvj420p": (1, 1, 8),
    "yuv422p": (1, 0, 8), "yuvj422p": (1, 0, 8),
    "yuv444p": (0, 0, 8), "yuvj444p": (0, 0, 8),
    "yuv420p10le": (1, 1, 10), "yuv422p10le": (1, 0, 10), "yuv444p10le": (0, 0, 10),
    "yuv420p12le": (1, 1, 12), "yuv422p12le": (1, 0, 12), "yuv444p12le": (0, 0, 12),
}
_GRAY = {"gray": 8, "gray10le": 10, "gray12le": 12}
_LUMA_ONLY = {**{k: v[2] for k, v in _PLANAR.items()}, **_GRAY, "nv12": 8, "nv21": 8}


def _plane(frame: av.VideoFrame, i: int, bits: int, width: int, height: int) -> np.ndarray:
    """Plane ``i`` as an (height, width) numpy view without the line padding (no copy)."""
    p = frame.planes[i]
    dtype = np.dtype(np.uint8) if bits == 8 else np.dtype("<u2")
    per_row = p.line_size // dtype.itemsize
    a = np.frombuffer(p, dtype=dtype, count=per_row * height)
    return a.reshape(height, per_row)[:, :width]


def small_size(src_w: int, src_h: int, width: int) -> tuple[int, int]:
    """(w, h) of a frame scaled to ``width`` keeping its aspect, height at least 1."""
    return width, max(1, round(src_h * width / src_w))


def _shrink(plane: np.ndarray, size: tuple[int, int], bits: int = 8) -> np.ndarray:
    """A plane view resized to ``size``: nearest-neighbour to twice the size (reads
    only the pixels it keeps), then an area average of those (cheap anti-aliasing)."""
    w, h = size
    if plane.shape[1] > 2 * w and plane.shape[0] > 2 * h:
        plane = cv2.resize(plane, (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
    out = cv2.resize(plane, size, interpolation=cv2.INTER_AREA)
    return out if bits == 8 else (out >> (bits - 8)).astype(np.uint8)


def _chroma(plane: np.ndarray, size: tuple[int, int], bits: int = 8) -> np.ndarray:
    """Chroma is smooth (and usually already subsampled): one bilinear resize is enough."""
    out = cv2.resize(plane, size, interpolation=cv2.INTER_LINEAR)
    return out if bits == 8 else (out >> (bits - 8)).astype(np.uint8)


def small_luma(frame: av.VideoFrame, width: int) -> np.ndarray:
    """Luma plane (uint8, H x W, video range as coded) of ``frame`` at ``width`` px wide."""
    bits = _LUMA_ONLY.get(frame.format.name)
    if bits is None:
        return cv2.cvtColor(small_rgb(frame, width), cv2.COLOR_RGB2GRAY)
    fw, fh = frame.width, frame.height
    return _shrink(_plane(frame, 0, bits, fw, fh), small_size(fw, fh, width), bits)


def small_rgb(frame: av.VideoFrame, width: int) -> np.ndarray:
    """RGB (uint8, H x W x 3) of ``frame`` at ``width`` px wide.

    Planar YUV (8-12 bit), NV12/NV21 and grey are shrunk plane by plane from
    numpy views of the decoder's buffers and converted to RGB once small;
    other formats go through swscale (``to_ndarray``).
    """
    fw, fh = frame.width, frame.height
    name = frame.format.name
    size = small_size(fw, fh, width)
    if name in _GRAY:
        g = _shrink(_plane(frame, 0, _GRAY[name], fw, fh), size, _GRAY[name])
        return cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)
    if name in _PLANAR:
        sx, sy, bits = _PLANAR[name]
        cw, ch = -(-fw >> sx), -(-fh >> sy)
        y = _shrink(_plane(frame, 0, bits, fw, fh), size, bits)
        u, v = (_chroma(_plane(frame, i, bits, cw, ch), size, bits) for i in (1, 2))
        return _yuv_to_rgb(cv2.merge([y, u, v]), frame, name.startswith("yuvj"))
    if name in ("nv12", "nv21"):
        y = _shrink(_plane(frame, 0, 8, fw, fh), size)
        cw, ch = -(-fw >> 1), -(-fh >> 1)
        uv = _chroma(_plane(frame, 1, 8, 2 * cw, ch).reshape(ch, cw, 2), size)
        u, v = (uv[..., 0], uv[..., 1]) if name == "nv12" else (uv[..., 1], uv[..., 0])
        return _yuv_to_rgb(cv2.merge([y, u, v]), frame, False)
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])


# BT.601 / BT.709 YCbCr -> RGB, as (Kr, Kb)
_COEFFS = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
_MATRICES: dict[tuple[str, bool], np.ndarray] = {}


def _matrix(standard: str, full_range: bool) -> np.ndarray:
    """3x4 affine matrix mapping (Y, Cb, Cr) uint8 to RGB for ``cv2.transform``."""
    key = (standard, full_range)
    if key not in _MATRICES:
        kr, kb = _COEFFS[standard]
        kg = 1 - kr - kb
        ys, cs, y0 = (1.0, 1.0, 0.0) if full_range else (255 / 219, 255 / 224, 16.0)
        m = np.array(
            [
                [ys, 0.0, 2 * (1 - kr) * cs],
                [ys, -2 * (1 - kb) * kb / kg * cs, -2 * (1 - kr) * kr / kg * cs],
                [ys, 2 * (1 - kb) * cs, 0.0],
            ]
        )
        offset = -m @ np.array([y0, 128.0, 128.0])
        _MATRICES[key] = np.hstack([m, offset[:, None]]).astype(np.float32)
    return _MATRICES[key]


def _yuv_to_rgb(yuv: np.ndarray, frame: av.VideoFrame, jpeg: bool) -> np.ndarray:
    # colorspace 1 = BT.709; unspecified (2) is guessed from the height like players do.
    cs = frame.colorspace
    standard = "bt709" if cs == 1 or (cs == 2 and frame.height >= 720) else "bt601"
    full = jpeg or frame.color_range == 2
    return cv2.transform(yuv, _matrix(standard, full))


def rotate_image(img: np.ndarray, degrees: int) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, multiples of 90) to a small image."""
    k = (degrees // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def frame_rotation(frame: av.VideoFrame) -> int:
    """Display rotation of a decoded frame (display matrix side data) as 0, 90, 180 or 270."""
    return int(round(frame.rotation / 90.0)) * 90 % 360
