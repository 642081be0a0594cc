"""Clip purity: the second line of defence against a boundary the shot detector missed (issue 8).

A clip that holds a cut or part of a transition teaches a video generator to
teleport, so every clip the planner emits is checked once more, on its own
terms, from frames the decode pass already has: each frame is reduced to a
48x27 RGB image (the detectors' comparison size, ~4 KB) and kept until no
clip still to be emitted can contain it.

Within a clip ``[start, end)``:

* the **clip's own level** is the median over its frames of the largest
  change between consecutive frames within one frame of it, so a stream of
  big changes (fire, a shaking camera) sets a high bar and a locked-off camera
  a low one, and a 10 fps source shown at 25 fps (fire2.mp4: real changes of
  ~25 grey levels between re-encoded repeats of ~0.5) is judged on its real
  changes;
* a change into a frame is **elevated** when it exceeds ``ratio`` times that
  level and ``min_change`` grey levels; elevated frames at most ``GAP``
  frames apart form a region, grown over the still-changing frames either
  side (half the bar, at most ``RAMP`` frames), so a wipe's or dissolve's slow
  ends go with it. Regions longer than ``max_frames`` are footage, not a
  transition;
* flashes go first: a jump after which the picture returns within a few
  frames is no change at all;
* a region is a **transition** when the ``SIDE`` frames before it and the
  ``SIDE`` frames after it show different content
  (:func:`~curate.analysis.same_content.same_content`: not a flash that
  returns to the same picture, not the same picture moved, shifted by a whip
  pan or re-exposed);
* a wipe, slide, iris or short dissolve spreads its change over many frames,
  so no single change stands out; the **spatial test** finds it instead: across
  a window that spans it, most cells of a 16x9 grid change far more than they
  change across equally long windows just before and after (2-26 frames, so
  transitions of up to ~24 frames), and far more than such windows change them
  anywhere in the clip; or far more of the pixels change colour than across
  those windows (**palette windows**: a wipe between a fast-moving shot and
  another, where the motion hides the cells' change). Its regions are fitted
  to the frames that show neither side's picture and judged by the same
  same-content test, except that new colours either side
  (:func:`~curate.analysis.same_content.new_colours`) outweigh "motion", and
  that a region found by the palette windows alone needs them (or fewer, where
  local motion does not explain its frames: a dissolve between two moving shots);
* a region in which one frame changes ``STANDS_OUT`` times more than every
  other is judged as a cut of its own as well (a cut into fire), and a cut
  ``SUDDEN`` times the changes around it is never "motion";
* a region with fewer than two of the clip's frames on one side cannot be
  judged (a transition the planner cut through, or motion at the clip's
  first frames): it is trimmed off, which costs a few frames at most.

:class:`PurityCheck` only finds transitions; :func:`pieces` says what is left
of a clip once they (and ``trim`` frames either side of each) are cut out, and
:func:`purify` which of those pieces are long enough. The analysis stage
keeps pieces of at least ``clips.min_s`` as clips and rejects a clip with
nothing left as ``contains_transition``; ``bench/bench_split.py`` scores the
same functions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import takewhile
from typing import Callable, Sequence

import cv2
import numpy as np

from curate.analysis.detector import TINY_SIZE, Boundary, with_faint_ends
from curate.analysis.same_content import (FLASH_FRAMES, UNEXPLAINED_AROUND, Checks, diff, explained_by_motion, flash_end, new_colours,
                                         palette, same_content)

REPEAT = 0.3  # mean RGB difference below which a frame repeats the previous one (as the combined detector)
GAP = 4  # frames of ordinary change that may interrupt one region
RAMP = 12  # at most this many frames of slow change either side of a region
SIDE = 5  # frames either side of a region for the same-content test
MARGIN = SIDE + RAMP  # frames kept before the oldest clip still to come (transition scores, same-content sides)
EDGE = "at the clip's edge"  # a region too close to the clip's first or last frame to judge: trimmed off
# The spatial test (PurityCheck._sweeps): each frame as GRID cells (3x3 px blocks of the 48x27 frame), its own
# brightness and contrast taken out and scaled to a spread of NORM_STD grey levels. A cell changed across a window
# of SCALES frames when its change exceeds CELL_RATIO x its change across the windows of the same length just
# before and just after, + CELL_MIN, and CLIP_RATIO x its median change across such windows in the clip; a window
# replaced the picture when at least CELLS of the cells changed. A frame of a region still shows one side's
# picture when SIDE_CELLS of the cells that differ between the sides are within SIDE_SHARE of that side.
# The palette windows: across a window, the share of pixels whose colour bin (same_content.palette) changed exceeds
# PAL_RATIO x that of the windows just before and after, + PAL_MIN, and CLIP_RATIO x its median in the clip (fast
# motion in front of a still picture changes the pixels but not the colours). Such a region, and a spatial one the
# same-content test calls motion, is a transition when the sides bring new colours (same_content.new_colours).
PAL_RATIO, PAL_MIN = 2.0, 0.1
# A region only the palette windows found, judged a transition by the same-content test, passes with
# PALETTE_UNEXPLAINED (not NEW_PALETTE) of the pixels in new colour bins where local motion does not explain its frames
# (same_content.explained_by_motion): a 7-frame dissolve between two moving shots (seed 699) moved 0.43, a turning
# bird's new side up to 0.42 too, but the bird's frames are its frames before moved. On 180 composites (seeds 521-600,
# 621-680, 901-940) clips holding a boundary 2 -> 0 at 25 fps, 2 -> 1 pillarboxed, 10 -> 8 at crf 38; clips kept
# -6, -7, -5 of ~800.
PALETTE_UNEXPLAINED = 0.3
# A transition only the palette windows found is soft (a smooth wipe, a dissolve between moving shots): its visible
# core is short, so, as the combined detector's accepted spans, it is cut out with its length more on each side, at
# most SOFT_FAINT frames (or a quarter, where that is more). Seed 735: a 20-frame smooth wipe up out of the hand-held
# cup into the cockatoo, found at frames 74-81, stayed in the clip before it by 3 frames. On the 180 composites,
# 681-740 in other variants and make bench's sets nothing else held a boundary before or after; 1 clean clip fewer at
# 25 fps and 1 pillarboxed (seeds 621-680, 901-940), and 1 more of 70 rejected in the perfect-split stress test.
SOFT_FAINT = 6
STANDS_OUT = 2.0  # a region's frame changing this many times more than every other is a cut (as the combined detector's)
SUDDEN = 4.0  # a cut this many times the changes within 2 frames either side is no motion (as the combined detector's)
GRID = (16, 9)
NORM_STD = 50.0
SCALES = (2, 3, 5, 8, 12, 18, 26)  # transitions up to ~24 frames
CELL_RATIO, CELL_MIN, CLIP_RATIO, CELLS = 2.0, 6.0, 2.0, 0.5
SIDE_SHARE, SIDE_CELLS = 0.3, 0.95


@dataclass(frozen=True)
class Finding:
    """A transition inside a clip: frames ``boundary.start .. boundary.end - 1`` (a cut: ``start == end``)."""

    boundary: Boundary
    change: float  # the largest frame-to-frame change of the region, grey levels (0-255)
    level: float  # the clip's own level it stood out from
    edge: bool = False  # at the clip's first or last frames, trimmed off without the same-content test

    def describe(self) -> str:
        b = self.boundary
        where = f"cut at frame {b.start}" if b.is_cut else f"transition over frames {b.start}-{b.end - 1}"
        why = "at the clip's edge" if self.edge else "different content either side"
        return f"{where}: change {self.change:.1f} vs the clip's level {self.level:.1f}, {why}"


class PurityCheck:
    """The 48x27 frames of clips still to come, and the test of a finished clip (module docstring).

    Args mirror ``clips.purity``: ``ratio`` (elevated: this many times the
    clip's level), ``min_change`` (grey levels), ``max_frames``
    (longer regions are footage), ``checks`` (the same-content tests' ratios).
    """

    def __init__(self, ratio: float = 5.0, min_change: float = 6.0, max_frames: int = 75, checks: Checks = Checks()):
        self.ratio, self.min_change, self.max_frames, self.checks = ratio, min_change, max_frames, checks
        self._img: deque[np.ndarray] = deque()
        self._grid: deque[np.ndarray] = deque()  # GRID cells (RGB means) of each held frame
        self._pal: deque[np.ndarray] = deque()  # palette (same_content.palette) of each held frame
        self._d: deque[float] = deque()  # change into each held frame (0.0 for a repeat or the first frame)
        self._off = 0  # frame number of _img[0]

    def consume(self, index: int, small_bgr: np.ndarray) -> None:
        """Keep frame ``index`` (sequential from 0) as a 48x27 RGB image."""
        rgb = cv2.cvtColor(cv2.resize(small_bgr, TINY_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        if not self._img:
            self._off = index
        d = diff(rgb, self._img[-1]) if self._img else 0.0
        self._img.append(rgb)
        self._grid.append(cv2.resize(rgb, GRID, interpolation=cv2.INTER_AREA))
        self._pal.append(palette(rgb))
        self._d.append(d if d >= REPEAT else 0.0)

    def drop_before(self, index: int) -> None:
        """No clip still to come starts before ``index``: keep ``MARGIN`` frames before it, drop the rest."""
        while self._img and self._off < index - MARGIN:
            self._img.popleft()
            self._grid.popleft()
            self._pal.popleft()
            self._d.popleft()
            self._off += 1

    def __len__(self) -> int:
        return len(self._img)

    def _frame(self, i: int) -> np.ndarray | None:
        k = i - self._off
        return self._img[k] if 0 <= k < len(self._img) else None

    def change(self, b: Boundary) -> float | None:
        """How much the picture differs across ``b`` (0-1: mean absolute RGB difference of the frames either side).

        None when those frames are no longer held.
        """
        x, y = self._frame(b.start - 1), self._frame(max(b.end, b.start))
        return None if x is None or y is None else diff(x, y) / 255.0

    def find(self, start: int, end: int) -> list[Finding]:
        """Transitions inside the clip ``[start, end)`` (frames still held), in order."""
        lo, hi = max(start, self._off), min(end, self._off + len(self._d))
        d = {k: self._d[k - self._off] for k in range(lo + 1, hi)}
        moving = [x for x in d.values() if x > 0.0]
        if len(moving) < 2:
            return []
        v = np.array(list(d.values()))
        peaks = np.maximum(np.maximum(v, np.r_[v[1:], 0.0]), np.r_[0.0, v[:-1]])  # the largest change within one frame
        level = float(np.median(peaks[peaks > 0.0]))
        bar = max(self.min_change, self.ratio * level)
        flashes = self._mask_flashes(d, bar)
        regions = [r for s, e in self._regions(d, bar) for r in ((s, e), *_dominant(d, s, e))]
        judged = [(s, e, self._is_transition(s, e, lo, hi)) for s, e in regions if e - s + 1 <= self.max_frames]
        explained = [(s, e) for s, e, why in judged if why in ("flash", "camera")]  # flashes, whip pans: never a transition
        soft: list[tuple[int, int]] = []  # transitions only the palette windows found
        for s, e, colours in self._sweeps(lo, hi, flashes, explained):
            over = [j for j in judged if j[0] <= e and s <= j[1] and j[2] is None]
            if any(j[0] == j[1] for j in over):  # a cut, found exactly by its one changed frame
                continue
            if over:  # the same transition, found in part by its frame-to-frame change: cut out all of it
                judged = [j for j in judged if j not in over]
                judged.append((min(s, *(j[0] for j in over)), max(e, *(j[1] for j in over)), None))
            elif e - s + 1 <= self.max_frames:
                touching = [(a, z) for a, z in explained if a <= e + 2 and s <= z + 2]  # carved out of the sweep
                whole = (min([s, *(a for a, _ in touching)]), max([e, *(z for _, z in touching)]))
                why = self._judge_sweep(s, e, lo, hi, colours, whole)
                judged.append((*whole, why) if why is None else (s, e, why))  # a transition: all of its change
                if why is None and colours:
                    soft.append(whole)
        cut = [(s, e) for s, e, why in judged if why is None or why == EDGE]
        found = []
        for s, e in _merged(cut):  # overlapping findings (a region and the sweep that overlaps it) are one
            g0, g1 = self._grow(d, s, e, bar / 2)  # excluded with its slow ends
            if g0 == g1:
                b = Boundary(s, s)
            else:  # and with its faint ends: an iris or clock wipe changes next to nothing in its first and last frames
                b = with_faint_ends(Boundary(g0, g1 + 1), lo, hi)
                if any(a <= e and s <= z for a, z in soft):  # a soft transition: its length more (SOFT_FAINT), if more
                    wide = with_faint_ends(Boundary(g0, g1 + 1), lo, hi, SOFT_FAINT, 1)
                    b = Boundary(min(b.start, wide.start), max(b.end, wide.end))
            edge = all(why == EDGE for a, z, why in judged if a <= e and s <= z and (why is None or why == EDGE))
            found.append(Finding(b, max(d.get(k, 0.0) for k in range(s, e + 1)), level, edge))
        return sorted(found, key=lambda f: f.boundary)

    def _is_transition(self, s: int, e: int, lo: int, hi: int) -> str | None:
        """None when the region ``[s, e]`` is a transition, ``EDGE`` when too little of the clip lies on one side to
        judge it (trimmed off), else why it is none (:func:`~curate.analysis.same_content.same_content`)."""
        before = self._frames(max(lo, s - SIDE), s)
        after = self._frames(e, min(hi, e + SIDE))
        if len(before) < 2 or len(after) < 2:
            return EDGE
        why = same_content(before, self._frames(s, e + 1), after, s == e, self.checks)
        around = [self._d[k - self._off] for k in (s - 2, s - 1, s + 1, s + 2) if lo <= k < hi]
        if why == "motion" and s == e and self._d[s - self._off] >= SUDDEN * max(around, default=0.0):
            return None  # as the combined detector: no motion changes one frame so much more than the frames around it
        return why

    def _judge_sweep(self, s: int, e: int, lo: int, hi: int, colours: bool, whole: tuple[int, int]) -> str | None:
        """As :meth:`_is_transition`, but neither fast motion on one side nor the shifted old picture of a slide's
        first frames hides new colours (:func:`new_colours`) either side of the ``whole`` change (the region with
        what the frame test took for a whip pan next to it).

        A region only the palette windows found (``colours``) needs those new colours, at the clip's edge too.
        """
        why = self._is_transition(s, e, lo, hi)
        if why not in (None, "motion", "camera", EDGE):
            return why
        before = [self._pal[k - self._off] for k in range(max(lo, whole[0] - SIDE), whole[0])]
        after = [self._pal[k - self._off] for k in range(whole[1], min(hi, whole[1] + SIDE))]
        new = new_colours(before, after)
        if why in ("motion", "camera"):  # a slide's first frames are the old picture shifted, but it brings new colours
            return None if new else why
        if new or not colours:
            return why
        if why is None and new_colours(before, after, PALETTE_UNEXPLAINED) and not self._explained(*whole, lo, hi):
            return None  # fewer new colours, but brought by change that local motion does not explain: a dissolve
        return "motion"

    def _explained(self, s: int, e: int, lo: int, hi: int) -> bool:
        """Frame by frame, local motion explains the change into frames ``s .. e`` as well as the change around them
        (:func:`~curate.analysis.same_content.explained_by_motion`, the combined detector's test of its change runs)."""
        k0 = max(s - UNEXPLAINED_AROUND, lo)
        return explained_by_motion(self._frames(k0, min(e + UNEXPLAINED_AROUND + 1, hi)), s - k0, e - k0)

    def _sweeps(self, lo: int, hi: int, flashes: dict[int, int],
                explained: list[tuple[int, int]]) -> list[tuple[int, int, bool]]:
        """Regions ``[first, last, colours]`` (changes into those frames) where most of the picture was replaced.

        A wipe, slide or short dissolve spreads its change over many frames,
        so no single frame-to-frame change stands out; but across a window
        that spans it, most cells of the picture change far more than they
        change across equally long windows just before and just after it
        (motion, a pan: about as much; a flash: the window's ends match).
        Windows of each length in ``SCALES`` are tested (cells normalised per
        frame, so automatic exposure is no change; flash frames replaced by
        the frame before them); overlapping ones form a region, less what
        the frame test already explained as a flash or a whip pan
        (``explained``), fitted to the frames that show neither side's
        picture (:meth:`_fit`). Where no cell window but a palette window
        (:meth:`_palette_windows`) found a change, the region is one of new
        ``colours``.
        """
        n = hi - lo
        if n < 2 * SCALES[0] + 1:
            return []
        g = _normalised(np.stack([self._grid[flashes.get(k, k) - self._off] for k in range(lo, hi)]))  # flash frames: the one before
        wins: list[tuple[int, int]] = []  # (first changed frame, last)
        for k in SCALES:
            m = n - k  # windows (i, i + k), i < m
            if m <= k:
                break
            x = np.abs(g[k:] - g[:-k]).mean(axis=3)  # change of each cell across window i
            y = np.full_like(x, -1.0)
            y[k:] = x[:-k]  # the window just before
            y[: m - k] = np.maximum(y[: m - k], x[k:])  # the window just after
            usual = np.median(x, axis=0)  # each cell's change across a window of this length in this clip
            changed = ((x > CELL_RATIO * y + CELL_MIN) & (x > CLIP_RATIO * usual)).mean(axis=(1, 2)) >= CELLS
            changed &= y[:, 0, 0] >= 0.0  # at least one side to compare with
            wins += [(lo + int(i) + 1, lo + int(i) + k) for i in np.flatnonzero(changed)]
        cells = _merged(wins)
        parts = [(p, False) for a, b in cells for p in _without((a, b), explained)]
        colour_wins = _merged(self._palette_windows(lo, hi, flashes))
        parts += [(p, True) for a, b in colour_wins for p in _without((a, b), [*explained, *cells])]
        fitted = [(self._fit(g, lo, a, b), colours) for (a, b), colours in parts]
        return [(r[0], r[1], colours) for r, colours in fitted if r is not None]

    def _palette_windows(self, lo: int, hi: int, flashes: dict[int, int]) -> list[tuple[int, int]]:
        """Windows ``(first changed frame, last)`` across which far more pixels changed colour than just before and after."""
        p = np.stack([self._pal[flashes.get(k, k) - self._off] for k in range(lo, hi)])
        n, wins = hi - lo, []
        for k in SCALES:
            m = n - k
            if m <= k:
                break
            x = 0.5 * np.abs(p[k:] - p[:-k]).sum(axis=1)
            y = np.full_like(x, -1.0)
            y[k:] = x[:-k]
            y[: m - k] = np.maximum(y[: m - k], x[k:])
            changed = (x > PAL_RATIO * y + PAL_MIN) & (x > CLIP_RATIO * np.median(x)) & (y >= 0.0)
            wins += [(lo + int(i) + 1, lo + int(i) + k) for i in np.flatnonzero(changed)]
        return wins

    @staticmethod
    def _fit(g: np.ndarray, lo: int, a: int, b: int) -> tuple[int, int] | None:
        """The frames of ``[a, b]`` that are neither still the picture before (``a - 1``) nor already the one after (``b``).

        Overlapping windows of several lengths cover more than the transition;
        a frame belongs to a side when nearly all cells that differ between the
        two sides are still (or already) close to that side. None when the two
        sides hardly differ.
        """
        pre, post = g[a - 1 - lo], g[b - lo]
        ab = np.abs(pre - post).mean(axis=2)
        cells = ab > CELL_MIN
        if cells.mean() < CELLS:
            return None
        seg = g[a - lo : b - lo + 1]
        near_a = ((np.abs(seg - pre).mean(axis=3) < SIDE_SHARE * ab) & cells).sum(axis=(1, 2)) >= SIDE_CELLS * cells.sum()
        near_b = ((np.abs(seg - post).mean(axis=3) < SIDE_SHARE * ab) & cells).sum(axis=(1, 2)) >= SIDE_CELLS * cells.sum()
        mixed = np.flatnonzero(~near_a & ~near_b)
        if len(mixed) == 0:  # from the one picture straight to the other: a cut at the first frame near the after side
            first_b = int(np.argmax(near_b))
            return a + first_b, a + first_b
        return a + int(mixed[0]), a + int(mixed[-1]) + 1

    def _frames(self, a: int, b: int) -> list[np.ndarray]:
        return [self._img[k - self._off] for k in range(a, b)]

    def _mask_flashes(self, d: dict[int, float], bar: float) -> dict[int, int]:
        """Set the changes of flashes to 0: a jump after which the picture returns within ``FLASH_FRAMES`` frames.

        Found before regions are formed, so a flash in high-motion footage does
        not join the motion around it into one long region whose two sides
        differ by the motion alone. Returns each flash frame's last frame before the flash.
        """
        flashes: dict[int, int] = {}
        for k in sorted(d):
            if d[k] < bar:
                continue
            pre = self._frame(k - 1)
            later = list(takewhile(d.__contains__, range(k + 1, k + FLASH_FRAMES + 2)))  # the first frame after it
            end = None if pre is None else flash_end(pre, self._frame(k), [self._frame(j) for j in later], self.checks.flash)
            if end is not None:
                j = later[end]
                for m in range(k, j + 1):
                    d[m] = 0.0
                flashes.update({m: k - 1 for m in range(k, j)})
        return flashes

    @staticmethod
    def _regions(d: dict[int, float], bar: float) -> list[tuple[int, int]]:
        """Runs of elevated frames ``[first, last]`` (inclusive), gaps of up to ``GAP`` moving frames bridged."""
        regions: list[list[int]] = []
        gap = 0
        for k, x in d.items():
            if x >= bar:
                if regions and gap <= GAP:
                    regions[-1][1] = k
                else:
                    regions.append([k, k])
                gap = 0
            elif x > 0.0:
                gap += 1
        return [(s, e) for s, e in regions]

    @staticmethod
    def _grow(d: dict[int, float], s: int, e: int, bar: float) -> tuple[int, int]:
        """Extend ``[s, e]`` over neighbouring frames still changing above ``bar`` (repeats pass), ``RAMP`` at most."""
        k = s - 1
        while k in d and k >= s - RAMP and (d[k] == 0.0 or d[k] >= bar):
            if d[k] > 0.0:
                s = k
            k -= 1
        k = e + 1
        while k in d and k <= e + RAMP and (d[k] == 0.0 or d[k] >= bar):
            if d[k] > 0.0:
                e = k
            k += 1
        return s, e


def _dominant(d: dict[int, float], s: int, e: int) -> list[tuple[int, int]]:
    """The frame of the region ``[s, e]`` whose change is ``STANDS_OUT`` times every other's, as a cut of its own.

    A cut into (or out of) fast motion joins the motion's changes into one
    region, whose two ends may even show the same picture (a burst of fire
    between two stretches of one locked-off camera); the cut is judged alone.
    """
    if e == s:
        return []
    k = max(range(s, e + 1), key=lambda j: d.get(j, 0.0))
    rest = max(d.get(j, 0.0) for j in range(s, e + 1) if j != k)
    return [(k, k)] if d[k] >= STANDS_OUT * rest else []


def _normalised(cells: np.ndarray) -> np.ndarray:
    """Each frame's cells with its own brightness and contrast taken out (automatic exposure is no change).

    Scaled so that an ordinary picture's cells keep a spread of ``NORM_STD`` grey levels (``CELL_MIN`` keeps its meaning).
    """
    x = cells.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (NORM_STD / (std + NORM_STD / 4))


def _merged(regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching ``[first, last]`` regions joined."""
    out: list[list[int]] = []
    for a, b in sorted(regions):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _without(region: tuple[int, int], holes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[first, last]`` outside the ``holes`` (each widened by a frame)."""
    parts = [region]
    for hs, he in holes:
        parts = [q for a, b in parts for q in ((a, min(b, hs - 2)), (max(a, he + 2), b)) if q[0] <= q[1]]
    return parts


def pieces(start: int, end: int, found: Sequence[Finding], trim: int) -> list[tuple[int, int]]:
    """What is left of the clip ``[start, end)`` once each transition and ``trim`` frames either side are cut out."""
    out, a = [], start
    for f in found:
        b = f.boundary
        stop = b.start - trim
        if stop > a:
            out.append((a, stop))
        a = max(a, max(b.end, b.start) + trim)
    if end > a:
        out.append((a, end))
    return out


def purify(check: PurityCheck, start: int, end: int, trim: int,
           long_enough: Callable[[int, int], bool]) -> tuple[list[tuple[int, int]], list[Finding]]:
    """The clean pieces of the clip ``[start, end)`` that are ``long_enough`` (``clips.min_s``), and what was found.

    No finding: the clip itself. Findings but no piece left: ``[]`` (the
    caller rejects the clip as ``contains_transition``). Each piece is checked
    again on its own: a big transition sets the clip's level and spatial
    medians, and can hide a smaller one (a wipe out of a still box, seed 302).
    """
    found = check.find(start, end)
    if not found:
        return [(start, end)], []
    kept: list[tuple[int, int]] = []
    for a, b in pieces(start, end, found, trim):
        if long_enough(a, b):
            clean, more = purify(check, a, b, trim, long_enough)
            kept += clean
            found = found + more
    return kept, sorted(found, key=lambda f: f.boundary)
