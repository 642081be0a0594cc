"""Shots to clip spans: trims, minimum length, fixed windows. Pure functions.

Durations come from decoded frame times (``starts[i]`` is frame ``i``'s pts
time, ``ends[i]`` the time the next frame replaces it), so variable frame
rate sources get clips of the configured length in seconds, not in frames.

Windows are laid from the shot's (trimmed) start, each as long as fits in
``max_s``; a remainder shorter than ``min_s`` is dropped. Because windows
only depend on where the shot starts, the complete windows of a shot that
is still open are already final, which the analysis stage uses to emit
clips while decoding (``closed=False``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence

from curate.analysis.shots import Boundary, merge_boundaries
from curate.analysis.steady_rate import step_for
from curate.config import ClipsConfig

_EPS = 1e-6


@dataclass(frozen=True)
class ClipSpan:
    """Frames ``start .. end-1`` of shot ``shot_index``, window ``window_index``."""

    shot_index: int
    window_index: int
    start: int
    end: int


def shot_ranges(boundaries: Sequence[Boundary], num_frames: int) -> list[tuple[int, int, bool, bool]]:
    """Non-empty shots as ``(start, end, starts_at_boundary, ends_at_boundary)``."""
    shots = []
    pos, after_boundary = 0, False
    for b in merge_boundaries(boundaries):
        if b.start > pos:
            shots.append((pos, min(b.start, num_frames), after_boundary, True))
        pos, after_boundary = max(pos, b.end), True
    if pos < num_frames:
        shots.append((pos, num_frames, after_boundary, False))
    return shots


def at_rate(cfg: ClipsConfig, fps: float) -> ClipsConfig:
    """``cfg`` for a video at ``fps``: ``trim_frames`` counted in the frames the detector analyses.

    A 50 or 60 fps video is analysed on every 2nd frame
    (:mod:`curate.analysis.steady_rate`), so a transition's start is known to
    2 of its frames, not 1; trimmed in the video's own frames, 2 frames were
    half the time they are at 25 fps and a clip kept a 50 fps span's first
    frame (bench/README.md "split").
    """
    k = step_for(fps)
    return cfg if k == 1 else cfg.model_copy(update={"trim_frames": cfg.trim_frames * k})


def split_shot(
    start: int,
    end: int,
    starts: Sequence[float],
    ends: Sequence[float],
    cfg: ClipsConfig,
    trim_start: bool = True,
    trim_end: bool = True,
    closed: bool = True,
) -> list[tuple[int, int]]:
    """Windows ``[a, b)`` of the shot ``[start, end)``.

    Args:
        starts, ends: per-frame start/end times (seconds), at least up to ``end``.
        trim_start, trim_end: drop ``cfg.trim_frames`` frames at that side
            (shots next to a boundary; not at the start/end of the video).
        closed: the shot really ends at ``end``. Otherwise ``end`` is only how
            far boundaries are known and just the complete windows are returned.
    """
    a = start + (cfg.trim_frames if trim_start else 0)
    stop = end - (cfg.trim_frames if trim_end else 0)
    out: list[tuple[int, int]] = []
    while a < stop:
        # past the last frame whose end still fits into max_s from the window's start
        b = max(bisect.bisect_right(ends, starts[a] + cfg.max_s + _EPS, a, stop), a + 1)
        if b >= stop:
            if closed and ends[stop - 1] - starts[a] >= cfg.min_s - _EPS:
                out.append((a, stop))
            break
        out.append((a, b))
        a = b
    return out


def plan_clips(
    boundaries: Sequence[Boundary],
    starts: Sequence[float],
    ends: Sequence[float],
    cfg: ClipsConfig,
) -> tuple[list[ClipSpan], int]:
    """All clip spans of a video, and how many shots were too short for any clip."""
    clips: list[ClipSpan] = []
    too_short = 0
    for shot_index, (s, e, lead, tail) in enumerate(shot_ranges(boundaries, len(starts))):
        windows = split_shot(s, e, starts, ends, cfg, lead, tail)
        too_short += not windows
        clips += [ClipSpan(shot_index, w, a, b) for w, (a, b) in enumerate(windows)]
    return clips, too_short


class ClipPlanner:
    """:func:`plan_clips` while decoding: emits each clip as soon as it is final.

    Feed boundaries as detectors report them (:meth:`add`) and call
    :meth:`advance` with the detectors' ``settled()`` frontier. The spans
    emitted over a whole video equal ``plan_clips`` on all its boundaries.
    """

    def __init__(self, cfg: ClipsConfig):
        self.cfg = cfg
        self.too_short = 0
        self._pending: list[Boundary] = []
        self._shot = 0  # index of the open shot
        self._start = 0  # first frame of the open shot
        self._lead = False  # the open shot starts at a boundary
        self._window = 0  # next window index in the open shot
        self._next: int | None = None  # first frame of the next window (after the lead trim)

    @property
    def keep_from(self) -> int:
        """No clip still to be emitted contains a frame before this index."""
        return self._start if self._next is None else self._next

    def add(self, boundaries: Sequence[Boundary]) -> None:
        self._pending.extend(boundaries)

    def advance(self, frontier: int, starts: Sequence[float], ends: Sequence[float]) -> list[ClipSpan]:
        """Clips final once no boundary can touch frames before ``frontier`` (<= frames decoded)."""
        self._pending.sort()
        out: list[ClipSpan] = []
        while self._pending and self._pending[0].start < frontier:
            b = self._pending.pop(0)
            if b.start > self._start:
                out += self._windows(b.start, starts, ends, trim_end=True, closed=True)
                self._close()
            self._start, self._lead, self._next = max(self._start, b.end), True, None
        if frontier > self._start:
            out += self._windows(frontier, starts, ends, trim_end=True, closed=False)
        return out

    def finish(self, starts: Sequence[float], ends: Sequence[float]) -> list[ClipSpan]:
        """The video ended: all pending boundaries apply and the last shot closes at the end."""
        n = len(starts)
        out = self.advance(n, starts, ends)
        if n > self._start:
            out += self._windows(n, starts, ends, trim_end=False, closed=True)
            self._close()
        return out

    def _windows(self, end: int, starts, ends, trim_end: bool, closed: bool) -> list[ClipSpan]:
        first = self._next is None
        start = self._start if first else self._next
        spans = split_shot(start, end, starts, ends, self.cfg, trim_start=self._lead and first, trim_end=trim_end, closed=closed)
        out = [ClipSpan(self._shot, self._window + k, a, b) for k, (a, b) in enumerate(spans)]
        if spans:
            self._window += len(spans)
            self._next = spans[-1][1]
        return out

    def _close(self) -> None:
        self.too_short += self._window == 0
        self._shot += 1
        self._window = 0
