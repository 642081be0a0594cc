"""Shape buckets: every batch holds clips decoded to one ``(T, H, W)``.

Video-generation trainers (Open-Sora, HunyuanVideo, Wan) batch clips of
similar aspect ratio, resolution and duration so nothing is padded and
little is cropped.  The config here is the same idea: a grid of areas x
frame counts x aspect ratios, each cell with its own batch size (big shapes
get small batches).  Assignment is a cheap, deterministic function of the
metadata columns, so the plan can bucket a whole epoch without decoding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_ASPECTS = (9 / 16, 3 / 4, 1.0, 4 / 3, 16 / 9)


@dataclass(frozen=True)
class Bucket:
    """Target shape of a batch: ``num_frames`` x ``height`` x ``width``, ``batch_size`` clips.

    ``area`` is the nominal resolution tier used to rank buckets (defaults to
    ``height * width``); grid buckets share their tier across aspect ratios,
    whose rounded sizes differ slightly.
    """

    height: int
    width: int
    num_frames: int
    batch_size: int
    area: int | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.num_frames, self.height, self.width)


@dataclass(frozen=True)
class BucketConfig:
    """The buckets plus the target frame rate that durations are measured in.

    Args:
        buckets: candidate shapes.
        fps: frame rate the clips are resampled to; ``None`` keeps each clip's own.
        allow_upscale: let a clip go to a bucket larger (in area) than itself.
            Off for grids, so each clip lands in the largest bucket it fills.
        stride: take every ``stride``-th decoded frame instead of resampling
            to ``fps`` (fixed-stride models); exclusive with ``fps``.  A clip
            fits when it has ``(num_frames - 1) * stride + 1`` frames.
    """

    buckets: tuple[Bucket, ...]
    fps: float | None = None
    allow_upscale: bool = False
    stride: int | None = None

    def __post_init__(self) -> None:
        if not self.buckets:
            raise ValueError("BucketConfig needs at least one bucket")
        if any(b.batch_size < 1 or b.num_frames < 1 or b.height < 1 or b.width < 1 for b in self.buckets):
            raise ValueError("bucket sizes and batch sizes must be >= 1")
        if self.stride is not None and (self.stride < 1 or self.fps is not None):
            raise ValueError(f"stride must be >= 1 and is exclusive with fps (got stride={self.stride}, fps={self.fps})")

    @classmethod
    def single(cls, height: int, width: int, num_frames: int, batch_size: int, fps: float | None = None, stride: int | None = None) -> BucketConfig:
        """One fixed shape for every clip (resized and cropped to fit, upscaling allowed)."""
        return cls((Bucket(height, width, num_frames, batch_size),), fps=fps, allow_upscale=True, stride=stride)

    @classmethod
    def grid(
        cls,
        areas: Mapping[int, Mapping[int, int]],
        aspect_ratios: Sequence[float] = DEFAULT_ASPECTS,
        fps: float | None = None,
        multiple: int = 16,
        allow_upscale: bool = False,
        stride: int | None = None,
    ) -> BucketConfig:
        """Buckets for every area x frame count x aspect ratio (width / height).

        Args:
            areas: ``{pixels: {num_frames: batch_size}}``, e.g.
                ``{256*256: {16: 8, 32: 4}, 512*512: {16: 2}}``.
            aspect_ratios: width / height of each bucket column.
            multiple: round heights and widths to this (the VAE x patch stride).
        """
        out = []
        for area, frames in areas.items():
            for r in aspect_ratios:
                h = max(multiple, round(math.sqrt(area / r) / multiple) * multiple)
                w = max(multiple, round(math.sqrt(area * r) / multiple) * multiple)
                out += [Bucket(h, w, t, bs, area) for t, bs in frames.items()]
        return cls(tuple(dict.fromkeys(out)), fps=fps, allow_upscale=allow_upscale, stride=stride)

    def assign(self, width: np.ndarray, height: np.ndarray, num_frames: np.ndarray, fps: np.ndarray) -> np.ndarray:
        """Bucket index of each clip, ``-1`` when no bucket fits it.

        A bucket fits when the clip lasts long enough for its frames at the
        target fps and (unless upscaling is allowed) has at least its area.
        Among those: the largest area tier, then the most frames, then the
        closest aspect ratio -- Open-Sora's order, minus its random keep.
        """
        cols = np.stack([np.asarray(a, np.float64) for a in (width, height, num_frames, fps)], axis=1)
        if len(cols) == 0:
            return np.zeros(0, np.int64)
        uniq, inverse = np.unique(cols, axis=0, return_inverse=True)
        w, h, n, f = (uniq[:, i : i + 1] for i in range(4))
        bw = np.array([b.width for b in self.buckets], np.float64)[None]
        bh = np.array([b.height for b in self.buckets], np.float64)[None]
        bt = np.array([b.num_frames for b in self.buckets], np.float64)[None]
        tier = np.array([b.area or b.height * b.width for b in self.buckets], np.float64)[None]
        if self.stride is not None:
            fits = n >= (bt - 1) * self.stride + 1
        elif self.fps is None:
            fits = n >= bt
        else:  # the last target time must fall inside the last frame's display interval
            fits = n / f + 1e-9 >= (bt - 1) / self.fps + 1 / f
        if not self.allow_upscale:
            fits &= w * h >= bw * bh
        aspect_gap = np.abs(np.log(w / h) - np.log(bw / bh))
        # lexicographic preference packed into one score: area, then frames, then aspect
        score = tier * 1e6 + bt * 1e2 - np.minimum(aspect_gap, 99.0)
        score = np.where(fits, score, -np.inf)
        best = np.argmax(score, axis=1)
        best[~np.isfinite(score.max(axis=1))] = -1
        return best[inverse.reshape(-1)]
