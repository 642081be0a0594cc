"""Is a change between two runs of frames a boundary, or the same content? (issue 8)

The combined detector (:mod:`curate.analysis.combined`) asks this of every
proposed boundary and the clip purity check (:mod:`curate.analysis.purity`)
of every change that stands out inside a clip, so both apply one set of tests
to 48x27 RGB frames. Each test names the kind of same content it recognises:

* **flash**: the content returns (a couple of overexposed frames): the
  closest before/after pair differs by less than ``flash`` times the largest
  step into the change, or a change of at most ``FLASH_FRAMES`` frames is
  far brighter than both sides, which match each other;
* **motion**: the closest before/after pair differs by less than
  ``separation`` times the largest frame-to-frame change on either side (a
  stream of big changes: fire, a shaking camera), or small per-block shifts
  (:func:`block_matched_diff`) explain the change (``motion``);
* **exposure**: the same picture, brighter or darker (gain and offset);
* **camera** (multi-frame changes only): before and after are one picture
  shifted far (:func:`shifted_diff`; a whip pan), ``camera``.

:func:`same_palette` is a further test the combined detector asks of its
multi-frame change runs only: motion moves pixels, not the picture's colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FLASH_FRAMES = 4  # a flash lasts at most this many frames


def diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two equally sized uint8 images."""
    return float(cv2.absdiff(a, b).mean())


def _shifts(n: int) -> np.ndarray:
    """Every shift up to 6 px, larger ones (whip pans) in steps of 2, both ways, below ``n``."""
    return np.array(sorted(set(range(-6, 7)) | set(range(0, n, 2)) | set(range(0, -n, -2))))


def shifted_diff(a: np.ndarray, b: np.ndarray, min_overlap: float = 0.35) -> float:
    """Smallest mean difference of ``a`` and ``b`` over translations leaving ``min_overlap`` of the image overlapping.

    Shifts of up to 6 px are tried one by one, larger ones (whip pans) in steps of 2.
    Every horizontal shift of one vertical shift is one numpy expression: ``b``
    zero-padded, its shifted copies as strided windows, and the ``|a|`` that
    the padding adds outside the overlap subtracted again (column sums).
    """
    h, w = a.shape[:2]
    a, b = a.astype(np.float32), b.astype(np.float32)
    best = float(np.abs(a - b).mean())
    dxs = _shifts(w)
    dxs = dxs[np.abs(dxs) < w]  # a shift by the whole width or more leaves no overlap
    padded = np.zeros((h, 3 * w - 2), np.float32)
    padded[:, w - 1 : 2 * w - 1] = b
    shifted = sliding_window_view(padded, w, axis=1)[:, (w - 1) - dxs]  # [y, j, x] = b[y, x - dxs[j]] (0 outside)
    widths = w - np.abs(dxs)
    for dy in _shifts(h):
        oh = h - abs(dy)
        ok = oh * widths >= min_overlap * h * w
        if not ok.any():
            continue
        pa = a[max(dy, 0) : max(dy, 0) + oh]
        total = np.abs(pa[:, None, :] - shifted[max(-dy, 0) : max(-dy, 0) + oh, ok]).sum(axis=(0, 2))
        cols = np.concatenate([[0.0], np.cumsum(np.abs(pa).sum(axis=0))])  # |a| of the first k columns
        d = dxs[ok]
        outside = np.where(d > 0, cols[np.clip(d, 0, w)], cols[w] - cols[np.clip(w + d, 0, w)])
        best = min(best, float(((total - outside) / (oh * widths[ok])).min()))
    return best


def block_matched_diff(a: np.ndarray, b: np.ndarray, tile: int = 9, reach: int = 4) -> float:
    """Mean difference of ``b`` and ``a`` after moving each ``tile`` x ``tile`` block of ``b`` by its best shift (<= ``reach`` px).

    Local motion (an animal's head, a shaking hand-held camera, a source that
    drops frames) is explained by small per-block shifts; new content (a cut,
    people that walked elsewhere during a jump cut) is not.
    """
    h, w = a.shape[:2]
    pad = cv2.copyMakeBorder(a.astype(np.float32), reach, reach, reach, reach, cv2.BORDER_REPLICATE)
    b = b.astype(np.float32)
    th, tw = h // tile, w // tile
    best = None
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            err = np.abs(pad[reach + dy : reach + dy + h, reach + dx : reach + dx + w] - b)
            per = err[: th * tile, : tw * tile].reshape(th, tile, tw, tile).mean(axis=(1, 3))
            best = per if best is None else np.minimum(best, per)
    return float(best.mean()) if best is not None else 0.0


# same_palette: a 4x4x4 RGB histogram per frame; before and after share the palette when their closest pair differs
# in less than PALETTE of the pixels' colour bins and by less than PALETTE_SPREAD times the palette's own change
# within either side. On 40 development composites every gradual transition (wipes, irises, dissolves, white fades)
# changed >= 6.3 % of the pixels' bins, while 15 of the 37 motion runs taken for transitions changed < 6 % (ratio < 1.5).
PALETTE, PALETTE_SPREAD = 0.06, 1.5
# new_colours: on the same 40 composites, 0.15 also took a hand-held close-up of a turning bird (cockatoo.mp4) for new
# colours in 21 of 276 clean clips (the purity check's palette windows); at 0.45 (nearly half the pixels) in 9.
NEW_PALETTE, NEW_PALETTE_SPREAD = 0.45, 2.0


def palette(x: np.ndarray) -> np.ndarray:
    """The share of an RGB uint8 image's pixels in each of 4x4x4 colour bins."""
    q = x // 64
    idx = (q[..., 0].astype(np.int32) * 16 + q[..., 1] * 4 + q[..., 2]).ravel()
    return np.bincount(idx, minlength=64) / idx.size


def palette_change(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> tuple[float, float]:
    """(cross, spread) of two runs of :func:`palette`: the share of pixels in other bins for the closest before/after
    pair, and the largest such share between two frames of one side."""
    d = lambda x, y: 0.5 * float(np.abs(x - y).sum())  # noqa: E731
    cross = min(d(x, y) for x in before for y in after)
    spread = max(d(x, y) for side in (before, after) for x in side for y in side)
    return cross, spread


def new_colours(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> bool:
    """The sides (runs of :func:`palette`) bring other colours: the closest pair has ``NEW_PALETTE`` of the pixels in
    other bins, and ``NEW_PALETTE_SPREAD`` times either side's own change (a slide or a wipe out of fast motion to
    another shot; a whip pan or motion within one scene keeps its colours)."""
    if not before or not after:
        return False
    cross, spread = palette_change(before, after)
    return cross >= NEW_PALETTE and cross >= NEW_PALETTE_SPREAD * spread


def same_palette(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> bool:
    """Before and after (RGB frames) show the same colours, no more apart than either side's own frames (module docstring)."""
    cross, spread = palette_change([palette(x) for x in before], [palette(x) for x in after])
    return cross < PALETTE and cross <= PALETTE_SPREAD * spread  # <=: two still, identical sides share it too


@dataclass(frozen=True)
class Checks:
    """The tests' ratios (the combined detector's parameters of the same names)."""

    flash: float = 0.25
    separation: float = 1.2
    camera: float = 0.4
    motion: float = 0.45


def _gray(x: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _luma(x: np.ndarray) -> float:
    return float(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).mean())


def same_content(before: Sequence[np.ndarray], inside: Sequence[np.ndarray], after: Sequence[np.ndarray],
                 cut: bool, checks: Checks = Checks()) -> str | None:
    """Why the change is no boundary ("flash", "motion", "exposure", "camera", "edge"), or None when it is one.

    Args:
        before: the frames right before the change (oldest first), 48x27 RGB.
        inside: the frames of the change, its first to its last (for a cut: the first new frame).
        after: the frames from the change's end on; empty when the video ends inside it (kept: None).
        cut: a one-frame change; the camera test is not applied (a jump cut in
            hand-held footage also shows the scene shifted).

    The closest before/after pair (``cross``) must differ by more than
    ``separation`` times the largest frame-to-frame difference within either
    side (so a stream of big changes, fire or a shaking camera, is not a
    boundary at each big one, while a jump cut on a locked-off camera, small
    but far above the people's motion, is), and by more than ``flash`` times
    the largest step into the change (the content did not come back after a
    flash); and the frames either side must not be one picture shifted,
    re-exposed or locally moved.
    """
    if not after:
        return None
    pre = before[-1]
    step_in = max(diff(pre, x) for x in inside)
    cross = min(diff(a, x) for a in before for x in after)
    if cross < checks.flash * step_in:
        return "flash"
    if len(inside) - 1 <= FLASH_FRAMES and len(after) > 1:  # a few frames far brighter than both sides, which match: a flash
        lit = max(_luma(x) for x in (inside if len(inside) == 1 else inside[:-1]))
        sides = _luma(pre), _luma(after[0])
        if lit >= max(sides) + 25.0 and abs(sides[0] - sides[1]) < 10.0:
            return "flash"
    within = max(diff(x, y) for side in (before, after) for x, y in zip(side, side[1:])) if len(after) > 1 else 0.0
    if cross < checks.separation * within:
        return "motion"
    if len(after) < 2:
        return "edge"  # the video ends within a frame: nothing to split off
    ga, gb = _gray(pre), _gray(after[0])
    plain = float(np.abs(ga - gb).mean())
    if plain <= 0:
        return None
    # a whip pan (several frames): the same picture shifted far; its end frames are
    # blurred, so frames further out are compared too.
    if not cut:
        for x, y in ((pre, after[0]), (before[len(before) // 2], after[len(after) // 2]), (before[0], after[-1])):
            gx, gy = _gray(x), _gray(y)
            if shifted_diff(gx, gy) < checks.camera * max(float(np.abs(gx - gy).mean()), 1e-6):
                return "camera"
    gain = (gb - gb.mean()) * (ga.std() / max(float(gb.std()), 1.0)) + ga.mean()
    if float(np.abs(ga - gain).mean()) < checks.camera * plain:
        return "exposure"  # the same picture, brighter or darker (automatic exposure)
    if block_matched_diff(ga, gb) < checks.motion * plain:
        return "motion"
    return None
