"""Black bars (letterbox, pillarbox) cut off the frames the shot detector and the purity check see (issue 8).

Much real footage carries them: a 2.39:1 film in a 16:9 frame, a 4:3 clip in a
16:9 edit. They never change, so everything the splitter compares is diluted
by them, and some comparisons go wrong outright: a whip pan is "the same
picture shifted", but the bars do not shift with it; the white middle of a
fade through white is no longer one flat colour. Measured on the hard
composites of seeds 621-640 re-encoded with 40 px bars left and right
(bench/README.md "split"): 25 boundaries at whip pans and 30 false gradual
transitions, against 7 and 12 without bars.

So, as ffmpeg's ``cropdetect`` does, rows and columns at the frame's edges
that stay at or below :data:`LIMIT` grey levels (every channel) over the
first :data:`LOOKAHEAD` frames are bars, and every frame is cropped to the
picture inside them before it is compared. Bars count only in pairs
(top and bottom, left and right: a dark sky is not a bar) and leave at least
half of each dimension (a dark picture is not bars); while every frame so
far is that dark (a fade in from black), the decision waits, up to
:data:`MAX_LOOKAHEAD` frames. The crop is decided once per video and kept
until :data:`LIT` of the bars' pixels stay lit for :data:`LIT_FRAMES` frames
(a source without bars after one with them, in an edited video: cropping it
would hide the edges of its shots); from the frame where the bars reached the
brightness they keep on, frames are compared whole (:class:`Cropper`). The
picture's scale changes there, which reads as a sudden change; it lies at the
end of the transition that brought the picture into the bars, which is
compared cropped like the shot before it (a wipe from a pillarboxed shot
into a full one, cut over at its first frame, was missed by both the
detector and the purity check). Subtitles in a letterbox light far fewer
pixels; a flash, or a whip pan of footage whose bars were there before the
edit, lights them for less time.

:class:`WithoutBars`, :class:`PurityWithoutBars` and :class:`MotionWithoutBars`
feed their detector, check or optical flow through one :class:`Cropper`, which
holds frames until it knows how to crop them; frame numbers do not change.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from curate.analysis.detector import Boundary
from curate.analysis.purity import Finding
from curate.analysis.shots import ShotDetector

LIMIT = 24  # brightest value (any channel) a bar's row or column reaches: ffmpeg cropdetect's default limit
LOOKAHEAD = 50  # frames looked at before the bars are decided (2 s at 25 fps)
MAX_LOOKAHEAD = 250  # ... or more, while no picture has shown: a fade in from black
MIN_BAR = 0.02  # a bar is at least this share of the frame's height (width): less is a dark border row
MAX_BARS = 0.5  # both bars of a pair cover at most this share: more is a dark picture, not bars
INSET = 1  # px more cut on each side with a bar: the row where bar and picture were scaled together
LIT = 0.5  # share of the bars' pixels above LIMIT in a frame where a picture fills them
LIT_FRAMES = 25  # frames in a row (at 25 fps) the bars are lit before the crop ends: longer than a flash or a whip pan
START = 0.05  # share of the bars' pixels above LIMIT from which frames are held: a picture may be coming in
ARRIVED = 0.9  # the bars as bright as this share of their brightness once lit: the new picture has come in
AT_ONCE = 0.5  # ... or this share of their whole rise to it in one frame: the picture came in at once (a cut)
MAX_HELD = 100  # frames (at 25 fps) held at most while the bars are partly lit (subtitles in a letterbox)
WHOLE = (slice(None), slice(None))


class Bars:
    """The bars of one video, found from its first frames (module docstring)."""

    def __init__(self) -> None:
        self._rows: np.ndarray | None = None  # brightest value of each row so far
        self._cols: np.ndarray | None = None
        self.seen = 0
        self.box: tuple[slice, slice] | None = None  # decided: the picture's rows and columns

    @property
    def decided(self) -> bool:
        return self.box is not None

    @property
    def cropping(self) -> bool:
        return self.box is not None and self.box != WHOLE

    def see(self, bgr: np.ndarray) -> bool:
        """Take one more frame into account; True once the crop is decided."""
        rows, cols = bgr.reshape(bgr.shape[0], -1).max(axis=1), bgr.max(axis=0).max(axis=1)  # 35x numpy's max over two axes
        self._rows = rows if self._rows is None else np.maximum(self._rows, rows)
        self._cols = cols if self._cols is None else np.maximum(self._cols, cols)
        self.seen += 1
        if self.seen >= MAX_LOOKAHEAD or (self.seen >= LOOKAHEAD and self._bright()):
            self.decide()
        return self.decided

    def _bright(self) -> bool:
        """Some picture has shown: the dark rows and columns leave at least half of each dimension."""
        return all((v > LIMIT).sum() >= MAX_BARS * len(v) for v in (self._rows, self._cols))

    def decide(self) -> None:
        """Fix the crop from the frames seen (none where they show no bars, or where there were none)."""
        self.box = WHOLE if self._rows is None else (_inner(self._rows), _inner(self._cols))

    def lit(self, bgr: np.ndarray) -> tuple[float, float]:
        """The share of the bars' pixels of this frame above ``LIMIT`` (any channel), and their mean brightness."""
        h, w = bgr.shape[:2]
        (r0, r1), (c0, c1) = (_bar_ends(self.box[0], h), _bar_ends(self.box[1], w))
        strips = [x for x in (bgr[:r0], bgr[r1:], bgr[:, :c0], bgr[:, c1:]) if x.size]
        total = sum(x.shape[0] * x.shape[1] for x in strips)  # corners are counted twice, which matters to no share
        dark = sum(cv2.countNonZero(cv2.inRange(x, (0, 0, 0), (LIMIT, LIMIT, LIMIT))) for x in strips)
        mean = sum(float(x.mean()) * x.shape[0] * x.shape[1] for x in strips)
        return (total - dark) / max(total, 1), mean / max(total, 1)

    def crop(self, bgr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(bgr[self.box]) if self.cropping else bgr

    def describe(self) -> str:
        """The picture's rows and columns, for logs and tests."""
        r, c = self.box or WHOLE
        return f"rows {r.start or 0}:{r.stop}, columns {c.start or 0}:{c.stop}"


def _inner(brightest: np.ndarray) -> slice:
    """The picture between a pair of bars along one axis (values of that axis's rows or columns), or all of it."""
    n = len(brightest)
    picture = np.flatnonzero(brightest > LIMIT)
    if not len(picture):
        return slice(None)
    lead, trail = int(picture[0]), n - 1 - int(picture[-1])
    if min(lead, trail) < max(1, MIN_BAR * n) or lead + trail > MAX_BARS * n:
        return slice(None)
    return slice(lead + INSET, n - trail - INSET)


def _bar_ends(picture: slice, n: int) -> tuple[int, int]:
    """Where the bars end and start again along an axis of ``n`` (the crop's slice less its ``INSET``)."""
    if picture.start is None:
        return 0, n
    return picture.start - INSET, picture.stop + INSET


class Cropper:
    """Frames in, the same frames without their bars out, as soon as it is known how to crop them.

    Once the crop is decided, frames whose bars are ``START`` lit are held. If ``LIT`` of the bars then stay lit
    for ``LIT_FRAMES`` frames, a picture came into them: frames go out whole from the first held one whose bars
    are as bright as they have become (``ARRIVED``), so the transition that brought the picture is compared
    cropped, as the shot before it, and the change of scale comes at its end. Where the bars rose by ``AT_ONCE``
    of that in one frame, the picture came in at once (a cut): frames go out whole from that frame, so the change
    of scale falls on the cut. (A cut from chaplin.mp4's pillarboxed picture into the turning cockatoo, whose
    edges brightened over the next frames, went out whole one frame after it: that frame's change of scale,
    half the cut's, made the cut look like motion doubled, and it was dropped; seed 1115.) If the bars go dark
    again (a flash, a whip pan of footage with baked-in bars), the held frames go out cropped; frames partly lit for long
    (subtitles in a letterbox) go out cropped after ``MAX_HELD`` frames. ``k``: frames per analysed frame
    (:func:`curate.analysis.steady_rate.step_for`): these counts are of analysed frames.
    """

    def __init__(self, k: int = 1):
        self.bars = Bars()
        self.lit_frames, self.max_held = LIT_FRAMES * k, MAX_HELD * k
        self._held: list[tuple[int, np.ndarray]] = []
        self._means: list[float] = []  # the held frames' bars' mean brightness (once decided)
        self._before = 0.0  # the bars' mean brightness in the frame before the first held one
        self._run = 0  # frames in a row, up to the last held, with LIT of the bars lit

    def push(self, index: int, bgr: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Frame ``index``; returns the frames (``index``, cropped frame) now ready, in order."""
        self._held.append((index, bgr))
        if not self.bars.decided:
            return self.flush() if self.bars.see(bgr) else []
        if not self.bars.cropping:
            return self.flush()
        share, mean = self.bars.lit(bgr)
        self._means.append(mean)
        if share < START:
            return self.flush()
        self._run = self._run + 1 if share >= LIT else 0
        if self._run >= self.lit_frames:  # a picture fills the bars
            out = self.flush(upto=self._arrived(float(np.median(self._means[-self.lit_frames:]))))
            self.bars.box = WHOLE
            return out + self.flush()
        if len(self._held) > self.max_held:
            return self.flush(upto=1)
        return []

    def _arrived(self, level: float) -> int:
        """The first held frame the picture has come into: bars ``ARRIVED`` as bright as ``level``, or risen
        ``AT_ONCE`` of the way from before to it in one frame."""
        rise = level - self._before
        steps = np.diff(self._means, prepend=self._before)
        return next(j for j, (m, step) in enumerate(zip(self._means, steps))
                    if m >= ARRIVED * level or (rise > 0 and step >= AT_ONCE * rise))

    def flush(self, upto: int | None = None) -> list[tuple[int, np.ndarray]]:
        """The held frames (the first ``upto`` of them), cropped as decided (deciding now from the frames seen, if
        not yet)."""
        if not self.bars.decided:
            self.bars.decide()
        n = len(self._held) if upto is None else upto
        if 0 < n <= len(self._means):
            self._before = self._means[n - 1]
        out = [(i, self.bars.crop(f)) for i, f in self._held[:n]]
        self._held, self._means = self._held[n:], self._means[n:]
        if not self._held:
            self._run = 0
        return out

    @property
    def first_held(self) -> int | None:
        return self._held[0][0] if self._held else None

    def release_before(self, end: int) -> list[tuple[int, np.ndarray]]:
        """Every held frame, cropped as decided (as at the video's end), when one comes before ``end``: frames
        before ``end`` are being asked about. None otherwise."""
        held = self.first_held
        return self.flush() if held is not None and held < end else []


class WithoutBars(ShotDetector):
    """``inner`` fed frames without their black bars (:class:`Cropper`)."""

    def __init__(self, inner: ShotDetector, k: int = 1):
        self.inner, self.cropper = inner, Cropper(k)

    def __getattr__(self, name: str) -> Any:  # the inner detector's audit lists (dropped, accepted) and the like
        return getattr(self.inner, name)

    def process_frame(self, index: int, small_bgr: np.ndarray) -> list[Boundary]:
        return self._feed(self.cropper.push(index, small_bgr))

    def _feed(self, frames: list[tuple[int, np.ndarray]]) -> list[Boundary]:
        return [b for i, f in frames for b in self.inner.process_frame(i, f)]

    def post_process(self, last_index: int) -> list[Boundary]:
        return self._feed(self.cropper.flush()) + self.inner.post_process(last_index)

    def settled(self) -> int:
        held = self.cropper.first_held
        return self.inner.settled() if held is None else min(self.inner.settled(), held)


class PurityWithoutBars:
    """A purity check (:class:`~curate.analysis.purity.PurityCheck`, or one at the steady rate) fed frames without
    their black bars, cropped as :class:`WithoutBars` crops them (the same rule on the same frames)."""

    def __init__(self, inner: Any, k: int = 1):
        self.inner, self.cropper = inner, Cropper(k)

    def consume(self, index: int, small_bgr: np.ndarray) -> None:
        self._feed(self.cropper.push(index, small_bgr))

    def _feed(self, frames: list[tuple[int, np.ndarray]]) -> None:
        for i, f in frames:
            self.inner.consume(i, f)

    def drop_before(self, index: int) -> None:
        self.inner.drop_before(index)

    def _upto(self, end: int) -> None:
        self._feed(self.cropper.release_before(end))

    def change(self, b: Boundary) -> float | None:
        self._upto(max(b.start, b.end) + 1)
        return self.inner.change(b)

    def find(self, start: int, end: int) -> list[Finding]:
        self._upto(end)
        return self.inner.find(start, end)


class MotionWithoutBars:
    """Optical flow (:class:`~curate.analysis.motion.MotionStats`) on its frames without their black bars.

    Bars never move: left in, a 4:3 picture pillarboxed in 16:9 lowers the motion score by a quarter, and the
    flow runs at ``motion_width`` over the frame, not the picture (``chaplin.mp4`` measured 0.147, under the
    default ``min_motion`` of 0.15). Cropped, a picture measures as it would without bars. The bars are found
    by the same rule from the flow's own grey frames, so its counts are of those (every ``motion_every``-th frame).
    """

    def __init__(self, inner: Any):
        self.inner, self.cropper = inner, Cropper()
        self._changed: dict[int, bool] = {}

    def wants(self, index: int) -> bool:
        return self.inner.wants(index)

    def consume(self, index: int, gray: np.ndarray, changed: bool = True) -> None:
        self._changed[index] = changed
        self._feed(self.cropper.push(index, cv2.merge([gray, gray, gray])))

    def _feed(self, frames: list[tuple[int, np.ndarray]]) -> None:
        for i, f in frames:
            self.inner.consume(i, np.ascontiguousarray(f[:, :, 0]), self._changed.pop(i))

    def clip(self, start: int, end: int) -> dict[str, float | str]:
        self._feed(self.cropper.release_before(end))
        return self.inner.clip(start, end)

    def drop_before(self, index: int) -> None:
        self.inner.drop_before(index)
