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


def decode_clip(row: dict[str, Any], out: torch.Tensor, fps: float | None, opts: DecodeOptions, rng: np.random.Generator, stride: int | None = None) -> None:
    """Decode ``row`` into ``out`` (uint8, ``(T, C, H, W)``), sampling frames nearest to the target times.

    With ``stride`` the frames are every ``stride``-th decoded frame instead
    (counted, not timed: fixed-stride models want exactly that spacing).

    ``row`` has the clip columns ``video``, ``fps``, ``num_frames``, ``width``,
    ``height`` and, for reference rows, ``source_uri``, ``start_s``, ``end_s``
    and ``source_rotation``. Frames missing at the end repeat the last frame.
    """
    import av

    T, _, H, W = out.shape
    rot = int(row.get("source_rotation") or 0) % 360 if row["video"] is None else 0
    rw, rh, x, y = geometry(int(row["width"]), int(row["height"]), W, H, opts, rng)
    if stride:
        idx = target_indices(int(row["num_frames"]), T, stride, opts, rng)
        times = idx / float(row["fps"])  # where the reference-mode seek goes
    else:
        times = target_times(int(row["num_frames"]), float(row["fps"]), T, fps, opts, rng)
    arr = out.numpy()  # frames are written in place, plane by plane
    try:
        with _open(row) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            origin, end = None, None
            if row["video"] is None:  # reference mode: seek to the span in the source
                origin, end = float(row["start_s"]), float(row["end_s"]) - float(row["start_s"])
                container.seek(int((origin + times[0]) / stream.time_base), stream=stream, backward=True, any_frame=False)
            last = None
            frames = container.decode(stream)
            picked = _pick_every(frames, idx, float(row["fps"]), origin, end) if stride else _pick(frames, times, float(row["fps"]), origin, end)
            for i, frame in enumerate(picked):
                if frame is last:  # fps upsampling: the same frame again
                    arr[i] = arr[i - 1]
                    continue
                last = frame
                sw, sh = (rh, rw) if rot in (90, 270) else (rw, rh)
                planar = frame.reformat(width=sw, height=sh, format="gbrp", interpolation=opts.interpolation.upper())
                for c, p in ((0, 2), (1, 0), (2, 1)):  # gbrp planes are G, B, R
                    plane = planar.planes[p]
                    a = np.frombuffer(plane, np.uint8, count=sh * plane.line_size).reshape(sh, plane.line_size)[:, :sw]
                    arr[i, c] = (np.rot90(a, rot // 90) if rot else a)[y : y + H, x : x + W]
    except (av.error.FFmpegError, OSError, ValueError, DecodeError) as e:
        raise DecodeError(f"{row.get('clip_id')}: {e}") from e


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


def _pick(frames: Iterable[Any], times: np.ndarray, clip_fps: float, origin: float | None, end: float | None) -> Iterator[Any]:
    """For each target time, the decoded frame nearest to it; stops decoding once all are chosen."""
    done, prev, t_prev = 0, None, 0.0
    for n, frame in enumerate(frames):
        t = frame.time if frame.time is not None else n / clip_fps
        if origin is None:
            origin = t  # embedded clips start at their first frame
        t -= origin
        if end is not None and t >= end - 0.5 / clip_fps:
            break
        if t < -0.5 / clip_fps:  # pre-roll from the keyframe before a reference span
            continue
        while done < len(times) and times[done] <= t:
            yield prev if prev is not None and times[done] - t_prev < t - times[done] else frame
            done += 1
        if done == len(times):
            return
        prev, t_prev = frame, t
    if prev is None:
        raise DecodeError("no frame decoded in the clip's span")
    for _ in range(len(times) - done):
        yield prev


def _pick_every(frames: Iterable[Any], indices: np.ndarray, clip_fps: float, origin: float | None, end: float | None) -> Iterator[Any]:
    """The decoded frames at ``indices`` (counted from the span start); the last frame repeats past the end."""
    wanted, done, prev, j = indices.tolist(), 0, None, 0
    for n, frame in enumerate(frames):
        t = frame.time if frame.time is not None else n / clip_fps
        if origin is None:
            origin = t
        t -= origin
        if end is not None and t >= end - 0.5 / clip_fps:
            break
        if t < -0.5 / clip_fps:  # pre-roll from the keyframe before a reference span
            continue
        while done < len(wanted) and wanted[done] == j:
            yield frame
            done += 1
        if done == len(wanted):
            return
        prev, j = frame, j + 1
    if prev is None:
        raise DecodeError("no frame decoded in the clip's span")
    for _ in range(len(wanted) - done):
        yield prev
