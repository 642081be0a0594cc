"""Clip bytes (or a reference span of the source) to a ``(T, C, H, W)`` uint8 tensor.

Decoding is the loader's cost, so it does the minimum: PyAV decodes in memory
with codec threads, only frames picked for the target timestamps are
converted, and each conversion is one swscale call that resizes and turns
YUV into planar RGB together; planar output lets the crop be copied straight
into the ``(C, H, W)`` batch slot, rows at a time, with no HWC->CHW transpose.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch


class DecodeError(RuntimeError):
    """A clip could not be opened or yielded no frame in its span."""


@dataclass(frozen=True)
class DecodeOptions:
    """How a clip becomes the bucket's shape.

    Args:
        resize: "cover" keeps the aspect ratio and crops the overflow; "stretch" does not crop.
        crop: "center", or "random" (seeded per sample, so replays are exact).
        temporal: where the sampled span starts when the clip is longer: "start", "center", "random".
        output: "uint8" (0..255) or "float" ((x / 255 - mean) / std, [-1, 1] by default).
        interpolation: swscale filter of the resize.  "area" (default) averages
            the source pixels each output pixel covers -- antialiased for the
            usual downscale to training size -- and is the fastest good one:
            about 1.4x swscale's "bilinear" per frame here (resize is most of
            the decode cost), which put the loader behind torchcodec + torchvision.
    """

    resize: Literal["cover", "stretch"] = "cover"
    crop: Literal["center", "random"] = "center"
    temporal: Literal["start", "center", "random"] = "random"
    output: Literal["uint8", "float"] = "uint8"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: Literal["area", "bilinear", "bicubic", "fast_bilinear", "lanczos"] = "area"


def normalize(video: torch.Tensor, opts: DecodeOptions) -> torch.Tensor:
    """uint8 frames ``(..., 3, H, W)`` as float ``(x / 255 - mean) / std`` (what ``output="float"`` yields)."""
    import torch

    mean = torch.tensor(opts.mean).view(3, 1, 1)
    return (video.float().div_(255) - mean) / torch.tensor(opts.std).view(3, 1, 1)


def geometry(w: int, h: int, width: int, height: int, opts: DecodeOptions, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Resized size ``(rw, rh)`` and crop offset ``(x, y)`` taking a ``w x h`` frame to ``width x height``."""
    if opts.resize == "stretch":
        return width, height, 0, 0
    s = max(width / w, height / h)
    rw, rh = max(width, round(w * s)), max(height, round(h * s))
    if opts.crop == "random":
        return rw, rh, int(rng.integers(0, rw - width + 1)), int(rng.integers(0, rh - height + 1))
    return rw, rh, (rw - width) // 2, (rh - height) // 2


def target_indices(num_frames: int, T: int, stride: int, opts: DecodeOptions, rng: np.random.Generator) -> np.ndarray:
    """Decoded-frame indices (from the clip start) of T frames taken every ``stride``-th frame."""
    slack = max(0, num_frames - ((T - 1) * stride + 1))
    offset = {"start": 0, "center": slack // 2, "random": int(rng.integers(0, slack + 1))}[opts.temporal]
    return offset + np.arange(T) * stride


def target_times(num_frames: int, clip_fps: float, T: int, fps: float | None, opts: DecodeOptions, rng: np.random.Generator) -> np.ndarray:
    """Timestamps (s, from the clip start) of the T frames to sample at ``fps`` (None: the clip's)."""
    step = 1.0 / (fps or clip_fps)
    slack = max(0.0, num_frames / clip_fps - ((T - 1) * step + 1.0 / clip_fps))
    offset = {"start": 0.0, "center": slack / 2, "random": float(rng.uniform(0, slack)) if slack else 0.0}[opts.temporal]
    return offset + np.arange(T) * step


@dataclass
class Target:
    """One shape to decode a clip into: ``out`` (uint8 ``(T, C, H, W)``) and how its frames are chosen."""

    out: torch.Tensor
    fps: float | None
    opts: DecodeOptions
    rng: np.random.Generator
    stride: int | None = None


def decode_clip(row: dict[str, Any], out: torch.Tensor, fps: float | None, opts: DecodeOptions, rng: np.random.Generator, stride: int | None = None) -> None:
    """Decode ``row`` into ``out`` (uint8, ``(T, C, H, W)``), sampling frames nearest to the target times.

    With ``stride`` the frames are every ``stride``-th decoded frame instead
    (counted, not timed: fixed-stride models want exactly that spacing).

    ``row`` has the clip columns ``video``, ``fps``, ``num_frames``, ``width``,
    ``height`` and, for reference rows, ``source_uri``, ``start_s``, ``end_s``
    and ``source_rotation``. Frames missing at the end repeat the last frame.
    """
    decode_targets(row, [Target(out, fps, opts, rng, stride)])


def decode_targets(row: dict[str, Any], targets: list[Target]) -> None:
    """Decode ``row`` once into every target's ``out`` (several buckets of one clip share one decode pass).

    Each target gets exactly the frames and pixels :func:`decode_clip` would give it alone.
    """
    import av

    fill = TargetFill(row, targets)
    try:
        with _open(row) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            origin, end = None, None
            if row["video"] is None:  # reference mode: seek to the span in the source
                origin, end = float(row["start_s"]), float(row["end_s"]) - float(row["start_s"])
                container.seek(int((origin + fill.first_time) / stream.time_base), stream=stream, backward=True, any_frame=False)
            _feed(container.decode(stream), fill, float(row["fps"]), origin, end)
    except (av.error.FFmpegError, OSError, ValueError, DecodeError) as e:
        raise DecodeError(f"{row.get('clip_id')}: {e}") from e


class TargetFill:
    """The loader's frame choice and resize/crop for ``targets`` of one clip, fed one frame at a time.

    :func:`decode_targets` feeds it the decoded frames of the stored clip;
    ``curate run`` feeds it the frames the encoder is given (``curate.media.encode``),
    so in-run latents see exactly what the loader would of a lossless copy of the clip.
    ``row`` needs ``fps``, ``num_frames``, ``width``, ``height`` and ``video``
    (``None``: a reference span of the source, rotated here by ``source_rotation``).
    """

    def __init__(self, row: dict[str, Any], targets: list[Target]) -> None:
        clip_fps = float(row["fps"])
        rot = int(row.get("source_rotation") or 0) % 360 if row["video"] is None else 0
        self.pickers: list[_Picker] = []
        for tg in targets:
            T, _, H, W = tg.out.shape
            geo = geometry(int(row["width"]), int(row["height"]), W, H, tg.opts, tg.rng)
            if tg.stride:
                idx = target_indices(int(row["num_frames"]), T, tg.stride, tg.opts, tg.rng)
                picker: _Picker = _Every(idx, idx / clip_fps)  # times: where the reference-mode seek goes
            else:
                picker = _Nearest(target_times(int(row["num_frames"]), clip_fps, T, tg.fps, tg.opts, tg.rng))
            picker.sink = _Writer(tg.out.numpy(), geo, rot, tg.opts.interpolation.upper())  # frames written in place
            self.pickers.append(picker)
        self.active, self.j = list(self.pickers), 0

    @property
    def first_time(self) -> float:
        """Time (s from the clip start) of the first frame any target wants."""
        return min(p.first_time for p in self.pickers)

    def push(self, frame: Any, t: float) -> bool:
        """Offer the next frame of the clip (an ``av.VideoFrame`` at ``t`` s from its start); True once every target is full."""
        self.active = [p for p in self.active if not p.feed(frame, t, self.j)]
        self.j += 1
        return not self.active

    def close(self) -> None:
        """The clip ended: the last frame stands in for any still missing (raises :class:`DecodeError` when none came)."""
        for p in self.active:
            p.finish()
        self.active = []


@dataclass
class _Writer:
    """Converts each picked frame into the next ``(C, H, W)`` slot: one swscale resize to planar RGB, then the crop."""

    arr: np.ndarray
    geo: tuple[int, int, int, int]
    rot: int
    interpolation: str
    i: int = 0
    last: Any = None

    def __call__(self, frame: Any) -> None:
        arr, i, rot = self.arr, self.i, self.rot
        self.i += 1
        if frame is self.last:  # fps upsampling: the same frame again
            arr[i] = arr[i - 1]
            return
        self.last = frame
        rw, rh, x, y = self.geo
        _, _, H, W = arr.shape
        sw, sh = (rh, rw) if rot in (90, 270) else (rw, rh)
        planar = frame.reformat(width=sw, height=sh, format="gbrp", interpolation=self.interpolation)
        for c, p in ((0, 2), (1, 0), (2, 1)):  # gbrp planes are G, B, R
            plane = planar.planes[p]
            a = np.frombuffer(plane, np.uint8, count=sh * plane.line_size).reshape(sh, plane.line_size)[:, :sw]
            arr[i, c] = (np.rot90(a, rot // 90) if rot else a)[y : y + H, x : x + W]


class _Picker:
    """Chooses a target's frames from the decoded stream, handing each to ``sink`` as soon as it is chosen."""

    sink: Any
    wanted: int
    done: int = 0
    prev: Any = None

    @property
    def first_time(self) -> float:
        raise NotImplementedError

    def feed(self, frame: Any, t: float, j: int) -> bool:
        """Offer the ``j``-th frame of the span (at ``t`` s from its start); True once every frame is chosen."""
        raise NotImplementedError

    def finish(self) -> None:
        """The span ended: the last frame stands in for any frame still missing."""
        if self.prev is None:
            raise DecodeError("no frame decoded in the clip's span")
        for _ in range(self.wanted - self.done):
            self.sink(self.prev)


class _Nearest(_Picker):
    """For each target time, the decoded frame nearest to it."""

    def __init__(self, times: np.ndarray) -> None:
        self.times, self.wanted, self.t_prev = times.tolist(), len(times), 0.0

    @property
    def first_time(self) -> float:
        return float(self.times[0])

    def feed(self, frame: Any, t: float, j: int) -> bool:
        while self.done < self.wanted and self.times[self.done] <= t:
            self.sink(self.prev if self.prev is not None and self.times[self.done] - self.t_prev < t - self.times[self.done] else frame)
            self.done += 1
        self.prev, self.t_prev = frame, t
        return self.done == self.wanted


class _Every(_Picker):
    """The decoded frames at ``indices`` (counted from the span start)."""

    def __init__(self, indices: np.ndarray, times: np.ndarray) -> None:
        self.indices, self.wanted, self.seek = indices.tolist(), len(indices), float(times[0])

    @property
    def first_time(self) -> float:
        return self.seek

    def feed(self, frame: Any, t: float, j: int) -> bool:
        while self.done < self.wanted and self.indices[self.done] == j:
            self.sink(frame)
            self.done += 1
        self.prev = frame
        return self.done == self.wanted


def _feed(frames: Iterable[Any], fill: TargetFill, clip_fps: float, origin: float | None, end: float | None) -> None:
    """Offer each frame of the span to ``fill``; stops decoding once every target is full."""
    for n, frame in enumerate(frames):
        t = frame.time if frame.time is not None else n / clip_fps
        if origin is None:
            origin = t  # embedded clips start at their first frame
        t -= origin
        if end is not None and t >= end - 0.5 / clip_fps:
            break
        if t < -0.5 / clip_fps:  # pre-roll from the keyframe before a reference span
            continue
        if fill.push(frame, t):
            return
    fill.close()


@contextmanager
def _open(row: dict[str, Any]) -> Iterator[Any]:
    import av

    if row["video"] is not None:
        src: Any = io.BytesIO(row["video"])
    elif "://" not in row["source_uri"] or row["source_uri"].startswith("file://"):
        src = row["source_uri"].removeprefix("file://")
    else:
        import fsspec

        with fsspec.open(row["source_uri"], "rb") as f, av.open(f, "r") as container:
            yield container
        return
    with av.open(src, "r") as container:
        yield container
