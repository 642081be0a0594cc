"""Is a change between two runs of frames a boundary, or the same content? (issue 8)

The combined detector (:mod:`curate.analysis.combined`) asks this of every
proposed boundary and the clip purity check (:mod:`curate.analysis.purity`)
of every change that stands out inside a clip, so both apply one set of tests
to 48x27 RGB frames. Each test names the kind of same content it recognises:

* **flash**: the content returns (a couple of overexposed frames): the
  closest before/after pair differs by less than ``flash`` times the largest
  step into the change, or a change of at most ``FLASH_FRAMES`` frames is
  far brighter than both sides, which match each other; :func:`flash_end`
  finds where a flash ends frame by frame (the picture back, as it was or
  locally moved, further moved where the light came and went in one frame
  each: :func:`lit_and_back`), so both callers can mask flashes before runs form;
* **motion**: the closest before/after pair differs by less than
  ``separation`` times the largest frame-to-frame change on either side (a
  stream of big changes: fire, a shaking camera), or small per-block shifts
  (:func:`block_matched_diff`) explain the change (``motion``); a one-frame
  change that continues the motion into the frames either side of it is a
  dropped frame (:func:`continues_motion`), and a small one that sub-pixel
  shifts explain block by block a picture slightly moved
  (:func:`moved_slightly`; both asked by the combined detector);
* **exposure**: the same picture, brighter or darker (gain and offset), which
  leaves far less than its own contrast between them (``EXPOSURE``);
* **camera** (multi-frame changes only): before and after are one picture
  shifted far (:func:`best_shift`; a whip pan), ``camera``, or
  ``PANNED`` times as loosely where every pair of ends matches at one shift
  and the frames between moved the picture by it (:func:`panned`; a whip
  pan over a moving shot); :func:`how_moved` asks further whether a shift is
  the one the frames between moved the picture by (two pictures can match
  at some other shift by chance), and :func:`made_of_its_ends` whether the
  frames between are those two pictures wiped or blended, not a third one
  passing in front of the camera.

:func:`explained_by_motion` asks of a multi-frame change whether each of its
frames, taken alone, is the frame before locally moved: fast motion (a bird
turning to the camera, a pancake tossed, a van driving past) changes many
pixels over many frames, but frame by frame per-block shifts explain it, while
a wipe's edge or a dissolve's blend brings content that no shift explains.

:func:`same_palette` is a further test the combined detector asks of its
multi-frame change runs only: motion moves pixels, not the picture's colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

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


def best_shift(a: np.ndarray, b: np.ndarray, min_overlap: float = 0.35) -> tuple[float, int, int]:
    """The smallest mean difference of ``a`` and ``b`` over translations leaving ``min_overlap`` of the image
    overlapping, and the translation ``(dx, dy)`` that gives it: ``b`` is ``a``'s content moved by it.

    Shifts of up to 6 px are tried one by one, larger ones (whip pans) in steps of 2.
    Every horizontal shift of one vertical shift is one numpy expression: ``b``
    zero-padded, its shifted copies as strided windows, and the ``|a|`` that
    the padding adds outside the overlap subtracted again (column sums).
    """
    h, w = a.shape[:2]
    a, b = a.astype(np.float32), b.astype(np.float32)
    best = (float(np.abs(a - b).mean()), 0, 0)
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
        means = (total - outside) / (oh * widths[ok])
        j = int(means.argmin())
        if means[j] < best[0]:
            best = (float(means[j]), -int(d[j]), -int(dy))  # a[y + dy, x] ~ b[y, x - dx]: a's content moved by -(dx, dy)
    return best


def tracked_shift(frames: Sequence[np.ndarray]) -> tuple[float, float]:
    """How far the picture moved over a run of grey frames: phase correlation of each frame with the next, summed.

    ``cv2.phaseCorrelate`` multiplies its inputs by the window in place, so it gets copies: each frame is one pair's
    second and the next pair's first, and was windowed twice as the first (which lost a 30 px whip pan in the
    turning cockatoo, seed 857 at 30 fps: 0 px tracked)."""
    window = cv2.createHanningWindow((frames[0].shape[1], frames[0].shape[0]), cv2.CV_32F)
    moves = [cv2.phaseCorrelate(x.copy(), y.copy(), window)[0] for x, y in zip(frames, frames[1:])]
    return float(sum(m[0] for m in moves)), float(sum(m[1] for m in moves))


def stepped_shift(frames: Sequence[np.ndarray]) -> tuple[float, float]:
    """How far the picture moved over a run of grey frames: the best shift (:func:`best_shift`) of each frame to the
    next, summed. Slower than :func:`tracked_shift`, but whole pixels: no sub-pixel bias to add up."""
    moves = [best_shift(x, y)[1:] for x, y in zip(frames, frames[1:])]
    return float(sum(m[0] for m in moves)), float(sum(m[1] for m in moves))


FLAT_STD = 6.0  # grey std (levels) of a 48x27 frame below which it is nearly one colour (the combined detector's flat_std)


def how_moved(frames: Sequence[np.ndarray], agree: float = 0.25, flat_std: float = FLAT_STD,
              still: float | None = None) -> Literal["pan", "still", "moved"]:
    """How the RGB frames moved the picture, against the shift their ends match best at.

    "pan": by that shift (within ``agree`` of its width across, of its height
    up and down). "still": the frames hardly moved it (less than ``still``,
    by default ``agree``), yet the ends match only at a shift: two pictures whose broad light and
    dark areas match there by chance (a slice wipe from fire into the
    cockatoo matched at (20, 10) px where its frames moved by (0, 1); seed
    857). "moved": they moved it, by another shift: a slide (a pan over two
    pictures), or a pan whose ends the motion in the picture or a move beyond
    any shift the ends are compared at leaves unmatched (whip pans in the
    turning cockatoo). Up and down the picture has half the pixels: a
    dissolve whose two pictures matched at (12, 14) px where the frames moved
    by (3, 7) was no pan (seed 816).

    The frames' move is tracked by phase correlation (:func:`tracked_shift`)
    and, where that disagrees, frame by frame (:func:`stepped_shift`): over
    whip pans of 28-30 px across, the phase correlation's sub-pixel steps
    added up to 5-19 px up and down (27 of the 177 "camera" proposals at whip
    pans on seeds 841-860 at 25 and 30 fps); each step's best shift followed
    them within 4 px, and whole pixels add up to no drift when nothing moves.

    A frame of nearly one colour (grey spread below ``flat_std``: the white
    middle of a fade through white) holds nothing to track, so no pan can be
    followed through it: "moved". Across the white frames of a fade from a cup
    on a white table into the pancake kitchen, phase correlation's noise added
    up to (21, -2) px, which agreed with the (26, -6) px the two pictures
    matched at by chance (seed 876): a pan, dropped.
    """
    grey = [_gray(x) for x in frames]
    if any(float(g.std()) < flat_std for g in grey):
        return "moved"
    _, dx, dy = best_shift(grey[0], grey[-1])
    tx, ty = tracked_shift(grey)
    if _within(dx - tx, dy - ty, grey[0].shape, agree):
        return "pan"
    sx, sy = stepped_shift(grey)
    if _within(dx - sx, dy - sy, grey[0].shape, agree):
        return "pan"
    return "still" if _within(sx, sy, grey[0].shape, agree if still is None else still) else "moved"


def _within(dx: float, dy: float, shape: tuple[int, ...], share: float) -> bool:
    """A move of (dx, dy) px is at most ``share`` of the frame: across its width, up and down its height (which has
    fewer pixels, so a pixel there counts for more)."""
    return float(np.hypot(dx / shape[1], dy / shape[0])) <= share


# made_of_its_ends: a wipe, close or slide shows one picture or the other at each pixel and a dissolve a mix of both,
# so no frame between differs from the nearer end by more than MIXED of the two ends' difference (a plain dissolve's
# middle frame: 0.5; the wipes and dissolves between moving shots of seeds 1054-1067: 0.12-0.32). A car passing close
# to the camera brings a third picture (bikes.mp4 at 3.8-4.4 s: 0.61).
MIXED = 0.5


def made_of_its_ends(frames: Sequence[np.ndarray]) -> bool:
    """Every frame between the first and the last of the RGB ``frames`` is, pixel by pixel, within ``MIXED`` of their
    difference of the nearer of them: the two pictures wiped, slid or blended, not a third one passing between."""
    pre, post = (x.astype(np.float32) for x in (frames[0], frames[-1]))
    apart = float(np.abs(pre - post).mean())
    return all(float(np.minimum(np.abs(x - pre), np.abs(x - post)).mean()) <= MIXED * apart for x in frames[1:-1])


def block_matched_diff(a: np.ndarray, b: np.ndarray, tile: int = 9, reach: int = 4) -> float:
    """Mean difference of ``b`` and ``a`` after moving each ``tile`` x ``tile`` block of ``b`` by its best shift (<= ``reach`` px).

    Local motion (an animal's head, a shaking hand-held camera, a source that
    drops frames) is explained by small per-block shifts; new content (a cut,
    people that walked elsewhere during a jump cut) is not. Every shift is one
    strided view of ``a`` padded by ``reach``, so all are compared in one numpy expression.
    """
    h, w = a.shape[:2]
    th, tw = h // tile, w // tile
    if th == 0 or tw == 0:
        return 0.0
    n = 2 * reach + 1
    pad = cv2.copyMakeBorder(a.astype(np.float32), reach, reach, reach, reach, cv2.BORDER_REPLICATE)
    shifted = sliding_window_view(pad, (th * tile, tw * tile))[:n, :n]  # [dy, dx, y, x]
    err = np.abs(shifted - b.astype(np.float32)[: th * tile, : tw * tile])
    rows = err.reshape(n, n, th, tile, tw * tile).sum(axis=3)  # one axis at a time: a mean over 2 strided axes was slow
    per = rows.reshape(n, n, th, tw, tile).sum(axis=4) / (tile * tile)
    return float(per.min(axis=(0, 1)).mean())


# explained_by_motion: a multi-frame change run is new content when the largest unexplained change into one of its
# frames reaches UNEXPLAINED x the median of the UNEXPLAINED_AROUND frames on its calmer side. On 20 composites
# (seeds 481-500) 10 of the 24 runs the combined detector had accepted on fast motion (a bird turning to the camera,
# a pancake tossed, a van driving past in bikes.mp4) stood below 2.5x, none of the 84 on true transitions (lowest
# 2.9x); on 30 earlier composites 3 of 16 and 4 of 139 (most of those 4 a second run over a transition already
# found). The floor keeps near-still footage (a median of ~0.5) from making a small residue stand out.
UNEXPLAINED, UNEXPLAINED_FLOOR, UNEXPLAINED_AROUND = 2.5, 1.0, 8
# Blocks may move up to UNEXPLAINED_REACH px (of 48) a frame: the cockatoo pulling its head back from the lens moves
# 5-6 px a frame, which 3 px left unexplained (19 grey levels against 4.6 around, a false 16-frame transition in the
# raw file); 6 px explains it (9.9, 2.2x). Seeds 521-600 and the 70 development composites: false gradual
# boundaries 46 -> 43 and 26 -> 25, no true one lost, no clip holding a boundary more, clean clips kept +1 and +2.
UNEXPLAINED_REACH = 6


def unexplained(a: np.ndarray, b: np.ndarray, reach: int = 3) -> float:
    """The change from RGB frame ``a`` to ``b`` that shifts of 6x6 blocks by up to ``reach`` px do not explain (grey levels)."""
    return block_matched_diff(_gray(a), _gray(b), tile=6, reach=reach)


# A flash in fast motion returns to a picture moved on by as many frames as the flash lasted: the cockatoo at the lens
# behind a 3-frame flash came back 0.49 of the flash's jump from the frame before it at 25 fps, and behind the same
# flash re-timed to 30 fps (4 frames) 0.56 (seed 1210), where half way was asked and the return became a cut. Its
# change left unexplained by local shifts (20.6 grey levels against the flash's 48.2) is what tells it from new content.
HALF_BACK = 0.6


def flash_end(pre: np.ndarray, first: np.ndarray, later: Sequence[np.ndarray], ratio: float) -> int | None:
    """The index in ``later`` of the first frame where the picture came back after the jump from ``pre`` to ``first``
    (a flash), or None.

    Back: it differs from ``pre`` by less than ``ratio`` times ``first`` does,
    as it is or, where it is ``HALF_BACK`` of the way back, locally moved
    (:func:`unexplained`): a flash in fast motion (a cup turned, a bird's head)
    returns to the picture moved on, 17 grey levels off where the flash was 58.
    Twice that is allowed where the light both came and went in one frame
    (:func:`lit_and_back`).
    """
    jump, moved = diff(pre, first), None
    for k, x in enumerate(later):
        back = diff(pre, x)
        if back < ratio * jump:
            return k
        if back < HALF_BACK * jump:
            moved = unexplained(pre, first) if moved is None else moved
            limit = ratio * moved * (2.0 if lit_and_back(pre, first, later[k - 1] if k else first, x) else 1.0)
            if unexplained(pre, x) < limit:
                return k
    return None


# lit_and_back: a flash brightens the picture by at least LIT grey levels in one frame and, from a frame still
# within a quarter of that of its brightest, falls back to within a quarter of where it was in one frame. The cockatoo
# pulling its head back from the lens through a flash (seeds 884 and 895 at 25 fps, 585 at 25 fps and crf 38) returned
# to a picture whose unexplained change was 0.26-0.35 of the flash's, over the 0.25 allowed: the flash, with the
# motion around it, became a false transition. A fade through white eases back from white over several frames (seeds
# 542, 659, 664: 0.27-0.33, brightest frame 255, the frame before the return 44-69 levels below it).
LIT = 25.0
LIT_BACK = 0.25


def lit_and_back(pre: np.ndarray, first: np.ndarray, last_lit: np.ndarray, x: np.ndarray) -> bool:
    """``first`` is at least ``LIT`` grey levels brighter than ``pre``, ``last_lit`` (the frame before ``x``) still
    within ``LIT_BACK`` of that rise of it, and ``x`` within ``LIT_BACK`` of it back at ``pre``'s brightness."""
    base = _luma(pre)
    rise = _luma(first) - base
    return rise >= LIT and _luma(last_lit) >= base + (1 - LIT_BACK) * rise and abs(_luma(x) - base) <= LIT_BACK * rise


def explained_by_motion(frames: Sequence[np.ndarray], start: int, end: int) -> bool:
    """Frame by frame, the change over ``frames[start..end]`` is no further from local motion than around it.

    ``frames`` are consecutive RGB frames holding up to ``UNEXPLAINED_AROUND``
    more either side; the largest unexplained change into a frame of the span
    must reach ``UNEXPLAINED`` times the median of those on the calmer side
    (at least ``UNEXPLAINED_FLOOR``) for the change to be new content: a
    transition the span holds only part of fills one side with its own change.
    """
    u = [unexplained(x, y, UNEXPLAINED_REACH) for x, y in zip(frames, frames[1:])]  # u[k-1]: into frame k
    inside = u[max(start - 1, 0) : end]
    sides = [side for side in (u[: max(start - 1, 0)], u[end:]) if side]
    if not inside or not sides:
        return False
    calm = min(float(np.median(side)) for side in sides)
    return max(inside) < UNEXPLAINED * max(calm, UNEXPLAINED_FLOOR)


# continues_motion: a frame the source dropped (29.97 fps shown at 25: carphone, box, the cup) doubles one frame's
# motion. x264 at crf 38 holds the motion around it back in skipped blocks, so that change stood 2.0-2.5x above its
# neighbours (STANDS_OUT) and was taken for a quiet jump cut: 26 of the 74 false cuts the checks accepted on 1051-1150
# at crf 38. Its change points the way the changes into the frames either side of it do (cosine 0.35-0.57 with the one
# before, 0.30-0.64 with the one after), where a cut's is new content, unrelated to the motion on at least one side
# (at most 0.14 there, 0.36 on the other, over 882 true cuts on 1051-1150 at 25, 30 fps and crf 38); a fade's first
# step points the way of the next only.
CONTINUES = 0.3


def continues_motion(frames: Sequence[np.ndarray]) -> bool:
    """The change into RGB frame ``frames[2]`` points the way the changes into ``frames[1]`` and ``frames[3]`` do:
    one motion going on through it (a dropped frame), not new content."""
    g = [_gray(x) for x in frames[:4]]
    into = [b - a for a, b in zip(g, g[1:])]
    return all(_cosine(into[1], side) >= CONTINUES for side in (into[0], into[2]))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two difference images (0.0 where either is blank: a repeated frame continues nothing)."""
    norm = float(np.sqrt(float((a * a).sum()) * float((b * b).sum())))
    return float((a * b).sum()) / norm if norm > 0 else 0.0


# moved_slightly: a camera jolt or a head turning moves the picture less than a pixel of 48x27, which whole-pixel block
# shifts (block_matched_diff) cannot follow: carphone_pristine.mp4's jolt at 1.0 s (a car on a bumpy road) changed 5
# grey levels against 1.5 around it at x264 crf 38, and was taken for a quiet jump cut in 11 composites of 1051-1150.
# Per block of a 4x3 grid, the picture's own gradients times a sub-pixel shift (plus an offset for brightness) left
# 0.46-0.59 of such a change's energy unexplained, and 0.68-1.0 of each of the 118 quiet true cuts' (below
# CATCH_UP x min_change) on 1051-1150 at 25, 30 fps and crf 38. Above that size it means nothing: the gradients of two
# unrelated pictures explain part of any large change. On the 180 composites at crf 38 it cost one jump cut (seed 922:
# the box 2.6 s on, smeared by the encoder to 7.8 grey levels, 0.49 left), which the purity check then cut out.
# Asked of sudden quiet cuts too (SUDDEN x the changes around, which the combined detector takes no motion to make):
# in seed 1170 the encoder held the frames before that jolt back so far that it stood 4.4x above them. Of the sudden
# quiet cut proposals on 1051-1150 in the four variants, the 78 true cuts left 0.71-1.0.
SLIGHT, SLIGHT_GRID = 0.62, (4, 3)


def moved_slightly(a: np.ndarray, b: np.ndarray) -> bool:
    """RGB frame ``b`` is ``a`` moved by less than a pixel, block by block (:func:`flow_residual`)."""
    return flow_residual(_gray(a), _gray(b)) < SLIGHT


def flow_residual(a: np.ndarray, b: np.ndarray, grid: tuple[int, int] = SLIGHT_GRID) -> float:
    """The share of the change from grey image ``a`` to ``b`` (its energy) that no sub-pixel shift and brightness
    offset per block of a ``grid`` (columns, rows) explains: the brightness-constancy equation, fitted by least
    squares to each block's pixels."""
    mean = (a + b) / 2
    gx = cv2.Sobel(mean, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(mean, cv2.CV_32F, 0, 1, ksize=3) / 8
    change = b - a
    (h, w), (nx, ny) = change.shape, grid
    total = left = 0.0
    for y in range(ny):
        for x in range(nx):
            block = slice(y * h // ny, (y + 1) * h // ny), slice(x * w // nx, (x + 1) * w // nx)
            basis = np.stack([gx[block].ravel(), gy[block].ravel(), np.ones(gx[block].size, np.float32)], axis=1)
            target = change[block].ravel()
            fit = np.linalg.lstsq(basis, target, rcond=None)[0]
            total += float(target @ target)
            left += float(np.square(target - basis @ fit).sum())
    return left / total if total > 0 else 0.0


# same_content's camera test: where every pair of ends matches at one shift and the frames between moved the picture
# by it frame by frame (panned), the ends may match PANNED x as loosely. The composites' whip pans (a 1.6x picture
# swept 60 % of its width in 5-9 frames, blurred, over a moving shot) left 0.40-0.52 of the plain difference at the
# shift. Of the change runs and cadence stretches the checks took for transitions on 180 composites at 25 fps (seeds
# 521-600, 881-900, 951-1030), 25 over whip pans pass under 0.5 so, and 1 over a true transition (which another
# proposal finds too). how_moved's "pan" alone (tracked or stepped) also let through a slide's first part, a squeeze
# and a pixelize whose ends matched at a chance shift (seeds 645, 696 at 30 fps, 717): clips then held them.
PANNED, PAN_AGREE = 1.25, 0.1


def panned(matches: Sequence[tuple[float, int, int]], frames: Sequence[np.ndarray]) -> bool:
    """The ends match at one shift (``matches``: (ratio, dx, dy) of each pair of ends), and the RGB ``frames`` between
    moved the picture by it frame by frame (:func:`stepped_shift`), both within ``PAN_AGREE`` of the closest match's."""
    _, dx, dy = min(matches)
    shape = frames[0].shape
    if not all(_within(x - dx, y - dy, shape, PAN_AGREE) for _, x, y in matches):
        return False
    sx, sy = stepped_shift([_gray(x) for x in frames])
    return _within(sx - dx, sy - dy, shape, PAN_AGREE)


# same_palette: a 4x4x4 RGB histogram per frame; before and after share the palette when their closest pair differs
# in less than PALETTE of the pixels' colour bins and by less than PALETTE_SPREAD times the palette's own change
# within either side. On 40 development composites every gradual transition (wipes, irises, dissolves, white fades)
# changed >= 6.3 % of the pixels' bins, while 15 of the 37 motion runs taken for transitions changed < 6 % (ratio < 1.5).
PALETTE, PALETTE_SPREAD = 0.06, 1.5
# new_colours: on the same 40 composites, 0.15 also took a hand-held close-up of a turning bird (cockatoo.mp4) for new
# colours in 21 of 276 clean clips (the purity check's palette windows); at 0.45 (nearly half the pixels) in 9.
NEW_PALETTE, NEW_PALETTE_SPREAD = 0.45, 2.0
# exposure: the sides are one picture re-exposed when, brought to each other's brightness and contrast, they differ
# by less than ``Checks.camera`` of their plain difference and by less than EXPOSURE of the contrast (grey std) they
# were brought to. A real exposure step in box.mp4 leaves 0.03 of it, the last frame of a flash against the picture
# it returns to 0.43; the snow of sintel_10s.mp4 fading to black and a dark shot after it (both of low contrast once
# the letterbox is cropped off) left 1.2, and were taken for one picture by the first test alone.
# A one-frame change is asked this before the motion test (separation): that exposure step in box.mp4 lies 3 frames
# from a flash in seeds 1254 and 1256, whose changes lifted the motion test's measure above the step, and a change
# that stands out so (SUDDEN) is kept as a cut into motion: two false cuts at 25 fps.
EXPOSURE = 0.6


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


def new_colours(before: Sequence[np.ndarray], after: Sequence[np.ndarray], share: float = NEW_PALETTE) -> bool:
    """The sides (runs of :func:`palette`) bring other colours: the closest pair has ``share`` of the pixels in
    other bins, and ``NEW_PALETTE_SPREAD`` times either side's own change (a slide or a wipe out of fast motion to
    another shot; a whip pan or motion within one scene keeps its colours)."""
    if not before or not after:
        return False
    cross, spread = palette_change(before, after)
    return cross >= share and cross >= NEW_PALETTE_SPREAD * spread


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


def _regained(x: np.ndarray, y: np.ndarray) -> float:
    """How far grey image ``x`` is from grey image ``y`` once given ``y``'s brightness and contrast (gain and offset).

    Asked both ways: any picture scaled down to a flat frame's contrast
    matches that flat frame (a cut from a white wall to a kitchen), but the
    flat frame cannot be scaled up into the picture.
    """
    return float(np.abs(y - ((x - x.mean()) * (y.std() / max(float(x.std()), 1.0)) + y.mean())).mean())


def _reexposed(ga: np.ndarray, gb: np.ndarray, plain: float, checks: Checks) -> bool:
    """Grey images ``ga`` and ``gb`` (``plain`` apart) are one picture, brighter or darker (``EXPOSURE``)."""
    there, back = _regained(gb, ga), _regained(ga, gb)
    return (there < checks.camera * plain and back < checks.camera * plain
            and max(there / max(float(ga.std()), 1.0), back / max(float(gb.std()), 1.0)) < EXPOSURE)


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
        if lit >= max(sides) + LIT and abs(sides[0] - sides[1]) < 10.0:
            return "flash"
    ga, gb = _gray(pre), _gray(after[0])
    plain = float(np.abs(ga - gb).mean())
    if cut and plain > 0 and _reexposed(ga, gb, plain, checks):
        # judged before the motion test: a flash or fast motion within a few frames of an exposure step lifts the
        # changes either side above it, and a change that stands out so is taken for a cut (EXPOSURE)
        return "exposure"
    within = max(diff(x, y) for side in (before, after) for x, y in zip(side, side[1:])) if len(after) > 1 else 0.0
    if cross < checks.separation * within:
        return "motion"
    if len(after) < 2:
        return "edge"  # the video ends within a frame: nothing to split off
    if plain <= 0:
        return None
    # a whip pan (several frames): the same picture shifted far; its end frames are
    # blurred, so frames further out are compared too.
    if not cut:
        matches = []
        for x, y in ((pre, after[0]), (before[len(before) // 2], after[len(after) // 2]), (before[0], after[-1])):
            gx, gy = _gray(x), _gray(y)
            d, dx, dy = best_shift(gx, gy)
            matches.append((d / max(float(np.abs(gx - gy).mean()), 1e-6), dx, dy))
            if matches[-1][0] < checks.camera:
                return "camera"
        if min(matches)[0] < PANNED * checks.camera and panned(matches, [pre, *inside]):
            return "camera"
    if not cut and _reexposed(ga, gb, plain, checks):  # a cut's sides were asked above
        return "exposure"  # the same picture, brighter or darker (automatic exposure)
    if block_matched_diff(ga, gb) < checks.motion * plain:
        return "motion"
    return None
