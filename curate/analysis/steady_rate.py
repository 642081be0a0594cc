"""Shot detection at a steady analysed rate, whatever the video's frame rate (issue 8).

The combined detector counts in frames: the 50 frames a change is judged
against, the 2 frames a cut must stand out from, the 5 frames either side of a
proposal, a wipe's gaps and faint ends. They were set on 25 fps material. At
50 fps every one of them covers half the time: motion changes each frame half
as much, so a dropped or repeated source frame stands out as a cut, and a
dissolve is twice as many frames that each change half as much. Measured on
the hard composites of seeds 621-640 re-timed to 50 fps (every frame count of
the plan doubled, bench/README.md "split"): hard-cut F1 0.66 with 64 false
cuts, gradual F1 0.80, against 0.99 and 0.90 at 25 fps.

So a video faster than 1.5x :data:`RATE` is analysed on every ``k``-th frame
(``k = round(fps / RATE)``: 50 and 60 fps every 2nd, 120 fps every 5th), which
the detector sees as a ~25 fps video. What it finds is put back on the
video's own frames: a cut on the frame of the skipped interval that changed
most, a gradual transition over every frame it may cover (up to ``k - 1``
more either side), a frame for each skipped one at the ends. The clip purity
check (:mod:`curate.analysis.purity`: windows of up to 26 frames, 5 frames
either side) counts in frames too and is run the same way
(:class:`PurityEveryKth`); a cut it finds is cut out with the whole interval
it lies in.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from curate.analysis.detector import TINY_SIZE, Boundary
from curate.analysis.purity import Finding, PurityCheck
from curate.analysis.shots import ShotDetector

RATE = 25.0  # frames a second the frame-counting detectors were built for
MAX_FPS = 240.0  # above this a reported rate is a container's time base, not frames (MPEG-TS 90 kHz): taken as unknown
KEEP = 4096  # per-frame changes kept to place cuts (far more than any detector's latency)


def step_for(fps: float) -> int:
    """Analyse every ``step_for(fps)``-th frame: 1 up to 37.5 fps (and for an unknown or implausible rate), 2 for 50
    and 60 fps."""
    return max(1, round(fps / RATE)) if 0 < fps <= MAX_FPS else 1


def at_steady_rate(detector: ShotDetector, fps: float) -> ShotDetector:
    """``detector`` as it is, or wrapped in :class:`EveryKth` where ``fps`` is well above :data:`RATE`."""
    k = step_for(fps)
    return detector if k == 1 else EveryKth(detector, k)


def purity_at_steady_rate(check: PurityCheck, fps: float) -> PurityCheck | PurityEveryKth:
    """``check`` as it is, or wrapped in :class:`PurityEveryKth` where ``fps`` is well above :data:`RATE`."""
    k = step_for(fps)
    return check if k == 1 else PurityEveryKth(check, k)


def _spanned(b: Boundary, k: int, last: int) -> Boundary:
    """Analysed frames ``b`` as the video's frames they may cover: a cut becomes the interval it lies in."""
    return Boundary(max(0, (b.start - 1) * k + 1), min(max(b.end, b.start) * k, last + 1))


class PurityEveryKth:
    """A :class:`~curate.analysis.purity.PurityCheck` fed every ``k``-th frame, asked and answering in the video's frames."""

    def __init__(self, inner: PurityCheck, k: int):
        self.inner, self.k, self._last = inner, k, -1

    def consume(self, index: int, small_bgr: np.ndarray) -> None:
        self._last = index
        if index % self.k == 0:
            self.inner.consume(index // self.k, small_bgr)

    def drop_before(self, index: int) -> None:
        self.inner.drop_before(index // self.k)

    def change(self, b: Boundary) -> float | None:
        return self.inner.change(Boundary(-(-b.start // self.k), -(-max(b.end, b.start) // self.k)))

    def find(self, start: int, end: int) -> list[Finding]:
        """The inner check's findings in the analysed frames of ``[start, end)``, as spans of the video's frames."""
        found = self.inner.find(-(-start // self.k), -(-end // self.k))
        return [Finding(_spanned(f.boundary, self.k, self._last), f.change, f.level, f.edge) for f in found]


class EveryKth(ShotDetector):
    """Feeds every ``k``-th frame to ``inner`` and maps what it reports back to the video's frames (module docstring).

    ``dropped`` and ``accepted`` (the combined detector's audit lists) are
    mapped too; other attributes are the inner detector's.
    """

    def __init__(self, inner: ShotDetector, k: int):
        self.inner, self.k = inner, k
        self._prev: np.ndarray | None = None
        self._d: deque[float] = deque(maxlen=KEEP)  # change into each of the last KEEP frames
        self._last = -1
        self._lists: dict[str, list] = {"dropped": [], "accepted": []}

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def process_frame(self, index: int, small_bgr: np.ndarray) -> list[Boundary]:
        tiny = cv2.resize(small_bgr, TINY_SIZE, interpolation=cv2.INTER_AREA)
        self._d.append(float(cv2.absdiff(tiny, self._prev).mean()) if self._prev is not None else 0.0)
        self._prev, self._last = tiny, index
        if index % self.k:
            return []
        return [self._full(b) for b in self.inner.process_frame(index // self.k, small_bgr)]

    def post_process(self, last_index: int) -> list[Boundary]:
        return [self._full(b) for b in self.inner.post_process(last_index // self.k)]

    def settled(self) -> int:
        return max(0, (self.inner.settled() - 1) * self.k + 1)

    @property
    def dropped(self) -> list:
        return self._mapped("dropped")

    @property
    def accepted(self) -> list:
        return self._mapped("accepted")

    def _mapped(self, name: str) -> list:
        """The inner detector's (label, boundary) list ``name``, its new entries mapped once, in order."""
        inner, out = getattr(self.inner, name, []), self._lists[name]
        out += [(label, self._full(b)) for label, b in inner[len(out):]]
        return out

    def _full(self, b: Boundary) -> Boundary:
        """A boundary in analysed frames as one in the video's frames."""
        k = self.k
        if b.is_cut:  # the cut lies between analysed frames b.start - 1 and b.start: on the frame that changed most
            lo, hi = (b.start - 1) * k + 1, min(b.start * k, self._last)
            first = self._last - len(self._d) + 1
            c = max(range(max(lo, first, 1), hi + 1), key=lambda f: self._d[f - first], default=b.start * k)
            return Boundary(c, c)
        return _spanned(b, k, self._last)
