"""Shot-boundary detection behind one small streaming interface.

A boundary is a span of frames that belongs to no shot: ``Boundary(i, i)`` is
a hard cut (frame ``i`` starts the new shot), ``Boundary(s, e)`` a gradual
transition whose frames ``s .. e-1`` are excluded from every clip.

Detectors see one small BGR frame at a time (``analysis.width`` wide) and
report boundaries late (they need a few frames of context). ``settled()``
tells the caller up to where their answer is final, which is what lets the
analysis stage emit clips, and drop their sampled frames, while decoding.

PySceneDetect's detectors are adapted as they are (``adaptive``, ``content``,
``threshold``); the interface is :mod:`curate.analysis.detector`, TransNetV2
lives in :mod:`curate.analysis.transnet`.
PySceneDetect's ``ThresholdDetector`` reports one cut in the middle of a fade,
but clips must exclude the whole fade, so ``detector.fades`` adds
:class:`GradualDetector`, which reports spans: dark runs (the threshold
detector's test) joined with the linear ramps around them, and dissolves.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

import cv2
import numpy as np

from curate.analysis.detector import TINY_SIZE, Boundary, ShotDetector

__all__ = ["Boundary", "ShotDetector", "TinyGray", "merge_boundaries"]

# PySceneDetect's defaults except min_scene_len: 15 frames lost every cut after
# a shot shorter than 0.6 s on composites of 8-30 frame segments of the shared
# videos (F1 0.82); 8 frames finds them all (F1 1.0) and adds no false cut on
# the shared ground truth or on composites of 2-3 s segments (tests/test_shots.py).
ADAPTIVE_DEFAULTS: dict[str, Any] = {"adaptive_threshold": 3.0, "min_content_val": 15.0, "min_scene_len": 8, "window_width": 2}


class TinyGray:
    """The 48x27 float grey image of a frame, computed once for the detectors that share it.

    Compression noise averages out at this size. One instance per detector
    set (:func:`build_detector`) remembers only the last frame, so nothing is
    shared between detectors of different videos or threads.
    """

    def __init__(self) -> None:
        self._frame: np.ndarray | None = None
        self._gray: np.ndarray | None = None

    def __call__(self, small_bgr: np.ndarray) -> np.ndarray:
        if self._frame is not small_bgr:
            g = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY)
            self._frame, self._gray = small_bgr, cv2.resize(g, TINY_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        return self._gray


class SceneDetectAdapter(ShotDetector):
    """A PySceneDetect 0.7 ``SceneDetector`` (cuts only) behind :class:`ShotDetector`.

    Repeated frames are not passed on: a low-rate source converted to a higher
    rate (10 fps fire at 25 fps) repeats each picture 2-3 times, and the
    adaptive detector then reads every real change as a spike against its
    zero-change neighbours. A frame counts as a repeat when its 48x27 grey
    image differs from the last frame passed on by less than
    ``repeat_level`` grey levels on average (re-encoded repeats: ~0.2;
    slow natural motion: >= 0.5). At least every ``max_hold``-th frame is
    passed on anyway, so a cut into a still shot is confirmed without delay.
    """

    def __init__(self, detector: Any, fps: float, repeat_level: float = 0.3, max_hold: int = 4, tiny: TinyGray | None = None):
        from scenedetect.common import FrameTimecode

        self._tc = FrameTimecode
        self._tiny = tiny or TinyGray()
        self.detector = detector
        self.fps = float(fps)
        self.repeat_level, self.max_hold = repeat_level, max_hold
        self._last = -1
        self._fed_gray: np.ndarray | None = None
        self._fed: deque[int] = deque(maxlen=max(detector.event_buffer_length, 1))

    def process_frame(self, index: int, small_bgr: np.ndarray) -> list[Boundary]:
        self._last = index
        g = self._tiny(small_bgr)
        if self._fed_gray is not None and index - self._fed[-1] < self.max_hold:
            if float(np.abs(g - self._fed_gray).mean()) < self.repeat_level:
                return []
        self._fed_gray = g
        self._fed.append(index)
        cuts = self.detector.process_frame(self._tc(index, fps=self.fps), small_bgr)
        return [Boundary(c.frame_num, c.frame_num) for c in cuts]

    def post_process(self, last_index: int) -> list[Boundary]:
        cuts = self.detector.post_process(self._tc(last_index, fps=self.fps))
        return [Boundary(c.frame_num, c.frame_num) for c in cuts]

    def settled(self) -> int:
        # reports reach back at most event_buffer_length frames *passed on*
        behind = self.detector.event_buffer_length
        if behind == 0:
            pending = self._last + 1
        else:
            pending = self._fed[0] if len(self._fed) == self._fed.maxlen else 0
        fade = getattr(self.detector, "last_fade", None)  # ThresholdDetector cuts back to its fade-out
        if fade and fade.get("type") == "out" and fade.get("frame") is not None:
            pending = min(pending, fade["frame"].frame_num)
        return pending


class GradualDetector(ShotDetector):
    """Fades and dissolves as spans, from 48x27 grey frames.

    Dissolves: a frame ``t`` inside a fade or dissolve is (close to) the
    average of the frames ``k`` before and after it. For a linear mix
    ``(1-a)A + aB`` that holds exactly, while motion leaves a residual and a
    hard cut leaves half the change. So ``t`` is a candidate when the change
    across the window ``D = |f(t+k) - f(t-k)|`` exceeds ``min_change`` grey
    levels and the residual ``|f(t) - (f(t-k)+f(t+k))/2|`` is below
    ``max_residual * D``; ``min_run`` consecutive candidates make a
    transition covering ``k`` frames either side. Each ``k`` in ``ks`` is
    tested: a short window keeps the motion residual of a dissolve into a
    handheld shot small, a long one sees slow dissolves.

    Fades: frames darker than ``dark_level`` (PySceneDetect's threshold test)
    are transition frames, joined with the run of frames whose mean falls by
    more than ``ramp_step`` per frame right before them (fade-out) and the run
    that rises right after (fade-in), so fade-out, black and fade-in are one span.
    """

    def __init__(
        self,
        ks: tuple[int, ...] = (3, 6),
        min_change: float = 12.0,
        max_residual: float = 0.2,
        min_run: int = 3,
        dark_level: float = 12.0,
        ramp_step: float = 0.5,
        tiny: TinyGray | None = None,
    ):
        self.ks, self.min_change, self.max_residual, self.min_run = ks, min_change, max_residual, min_run
        self.dark_level, self.ramp_step = dark_level, ramp_step
        self._tiny = tiny or TinyGray()  # shared with the other detectors of the set
        self._win: deque[np.ndarray] = deque(maxlen=2 * max(ks) + 1)
        self._last = -1
        self._mean = 0.0
        self._fall_start = 0  # first frame of the current run of falling means
        self._rising = False  # right after a dark frame, while the mean keeps rising
        self._runs: dict[int, list[int]] = {}  # k -> [first candidate, length] of the current run
        self._span: list[int] | None = None  # open transition [first, last frame]

    def _candidate(self, k: int) -> bool:
        a, b, c = self._win[-1 - 2 * k], self._win[-1 - k], self._win[-1]
        d = float(np.abs(c - a).mean())
        return d > self.min_change and float(np.abs(b - (a + c) * 0.5).mean()) < self.max_residual * d

    def _cover(self, first: int, last: int) -> None:
        if self._span is None:
            self._span = [first, last]
        else:
            self._span[0], self._span[1] = min(self._span[0], first), max(self._span[1], last)

    def _fade(self, index: int, mean: float) -> None:
        if index > 0 and mean >= self._mean - self.ramp_step:
            self._fall_start = index
        if mean < self.dark_level:
            self._cover(self._fall_start, index)
            self._rising = True
        elif self._rising and mean > self._mean + self.ramp_step:
            self._cover(index, index)
        else:
            self._rising = False
        self._mean = mean

    def _dissolve(self, index: int) -> None:
        for k in self.ks:
            if len(self._win) < 2 * k + 1:
                continue
            t = index - k
            if not self._candidate(k):
                self._runs.pop(k, None)
                continue
            run = self._runs.setdefault(k, [t, 0])
            run[1] += 1
            if run[1] >= self.min_run:
                self._cover(run[0] - k, t + k)

    def process_frame(self, index: int, small_bgr: np.ndarray) -> list[Boundary]:
        g = self._tiny(small_bgr)
        self._last = index
        self._win.append(g)
        self._fade(index, float(g.mean()))
        self._dissolve(index)
        return self._close(force=False)

    def _reach(self) -> int:
        """Earliest frame a future report could still cover."""
        k = max(self.ks)
        reach = min(self._last + 1 - 2 * k, self._fall_start)  # next candidate t - k; a fade-out
        for kk, (first, _) in self._runs.items():
            reach = min(reach, first - kk)
        return max(reach, 0)

    def _close(self, force: bool) -> list[Boundary]:
        if self._span is None or (not force and (self._rising or self._reach() <= self._span[1] + 1)):
            return []
        first, last = max(self._span[0], 0), min(self._span[1], self._last)
        self._span = None
        return [Boundary(first, last + 1)]

    def post_process(self, last_index: int) -> list[Boundary]:
        return self._close(force=True)

    def settled(self) -> int:
        reach = self._reach()
        return min(reach, self._span[0]) if self._span is not None else reach


class CombinedDetector(ShotDetector):
    """Several detectors on the same frames; boundaries are their union."""

    def __init__(self, detectors: Iterable[ShotDetector]):
        self.detectors = list(detectors)

    def process_frame(self, index: int, small_bgr: np.ndarray) -> list[Boundary]:
        return [b for d in self.detectors for b in d.process_frame(index, small_bgr)]

    def post_process(self, last_index: int) -> list[Boundary]:
        return [b for d in self.detectors for b in d.post_process(last_index)]

    def settled(self) -> int:
        return min(d.settled() for d in self.detectors)


def merge_boundaries(boundaries: Iterable[Boundary], tolerance: int = 0) -> list[Boundary]:
    """Sorted union: overlapping spans, and cuts within ``tolerance`` frames of a span, become one."""
    out: list[Boundary] = []
    for b in sorted(boundaries):
        last = out[-1] if out else None
        if last is not None and b.start <= last.end + tolerance and (b == last or not (b.is_cut and last.is_cut)):
            out[-1] = Boundary(last.start, max(last.end, b.end))
        else:
            out.append(b)
    return out
