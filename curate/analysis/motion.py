"""Motion and camera movement from sparse optical flow on tiny frames.

OpenCV's DIS flow (ultrafast preset) runs between every ``every``-th frame
of the luma at ``analysis.motion_width`` (rotation applied, so directions are
as displayed; very wide frames at a short side of ``MIN_SIDE``, see
:func:`flow_size`), divided by the frame gap: every number is px/frame at
``analysis.motion_width`` wide. Each pair keeps five floats; a clip
aggregates the pairs whose both frames lie inside it, so pairs that straddle
a cut never count.

Per clip: ``motion_score`` mean flow magnitude; ``camera_pan`` / ``camera_tilt``
the median horizontal / vertical flow (positive: content moves right / down,
i.e. the camera pans left / tilts up); ``camera_zoom`` the mean radial flow
(positive: content moves away from the centre, zooming in).

``camera_motion`` label, in that order:
    static      motion_score < STATIC (0.15 px/frame)
    zoom_in/out |zoom| >= DOMINANT * motion_score and |zoom| > |(pan, tilt)|
    pan_left/right, tilt_up/down
                |(pan, tilt)| >= DOMINANT * motion_score; the larger axis wins
    complex     anything else (local motion, shake, mixed movement)
with DOMINANT = 0.6: the global movement explains most of the flow.
"""

from __future__ import annotations

import cv2
import numpy as np

STATIC = 0.15
DOMINANT = 0.6
MIN_SIDE = 32  # DIS flow crashes (SIGSEGV) on frames 10-31 px tall and returns NaN below


def flow_size(width: int, height: int, motion_width: int) -> tuple[int, int]:
    """(w, h) the optical flow runs at for a ``width`` x ``height`` frame.

    ``motion_width`` wide, keeping the aspect (as always), as long as the
    short side stays at least ``MIN_SIDE`` (landscape aspects up to 5:1 at
    the default 160 px, any portrait one); otherwise the short side is
    ``MIN_SIDE`` (a 1280x96 source flows at 427x32, upscaling if need be).
    Flow is rescaled to px/frame at ``motion_width`` wide either way.
    """
    scale = motion_width / width
    if min(width, height) * scale < MIN_SIDE:
        scale = MIN_SIDE / min(width, height)
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))


class MotionStats:
    """Flow between every ``every``-th frame; see the module docstring."""

    def __init__(self, width: int, every: int):
        self.width, self.every = width, every
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._prev: tuple[int, np.ndarray] | None = None
        self._radial: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None
        self.pairs: list[tuple[int, int, float, float, float, float]] = []  # i0, i1, mag, dx, dy, zoom

    def wants(self, index: int) -> bool:
        return index % self.every == 0

    def consume(self, index: int, gray: np.ndarray, changed: bool = True) -> None:
        """Add frame ``index`` (uint8 grey, displayed orientation); only call when :meth:`wants`.

        ``changed=False`` says no frame changed since the previous call: the
        pair gets zero flow without running the optical flow.
        """
        if not changed and self._prev is not None:
            self.pairs.append((self._prev[0], index, 0.0, 0.0, 0.0, 0.0))
            self._prev = (index, self._prev[1])
            return
        size = flow_size(gray.shape[1], gray.shape[0], self.width)
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        if self._prev is not None and self._prev[1].shape == small.shape:
            i0, prev = self._prev
            # px/frame at ``width`` wide whatever size the flow ran at
            flow = self._dis.calc(prev, small, None) * (self.width / size[0]) / (index - i0)
            self.pairs.append((i0, index, *self._summary(flow)))  # NaN if the flow failed; see clip()
        self._prev = (index, small)

    def _summary(self, flow: np.ndarray) -> tuple[float, float, float, float]:
        # every other pixel: flow is smooth at this size, and this is 4x cheaper
        u, v = flow[::2, ::2, 0], flow[::2, ::2, 1]
        rx, ry = self._unit_radius(u.shape)
        mag = float(cv2.magnitude(u, v).mean())
        return mag, _median(u), _median(v), float((u * rx + v * ry).mean())

    def _unit_radius(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors pointing away from the image centre (cached per size)."""
        if self._radial is None or self._radial[0] != shape:
            ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
            dx, dy = xs - (shape[1] - 1) / 2, ys - (shape[0] - 1) / 2
            r = np.maximum(np.hypot(dx, dy), 1.0)
            self._radial = (shape, dx / r, dy / r)
        return self._radial[1], self._radial[2]

    def clip(self, start: int, end: int) -> dict[str, float | str]:
        """Aggregate of the pairs inside frames ``start .. end-1``."""
        rows = np.array([p[2:] for p in self.pairs if p[0] >= start and p[1] < end], dtype=np.float64).reshape(-1, 4)
        measured = rows[np.isfinite(rows).all(axis=1)]  # pairs the flow could not measure are left out
        if len(measured) == 0 and len(rows):
            # nothing measurable: NaN scores, which the filter reports as "not measurable", never "nan < min_motion"
            nan = float("nan")
            return {"motion_score": nan, "camera_pan": nan, "camera_tilt": nan, "camera_zoom": nan, "camera_motion": "complex"}
        rows = measured
        if len(rows) == 0:
            return {"motion_score": 0.0, "camera_pan": 0.0, "camera_tilt": 0.0, "camera_zoom": 0.0, "camera_motion": "static"}
        score, pan, tilt, zoom = rows[:, 0].mean(), np.median(rows[:, 1]), np.median(rows[:, 2]), rows[:, 3].mean()
        return {
            "motion_score": float(score),
            "camera_pan": float(pan),
            "camera_tilt": float(tilt),
            "camera_zoom": float(zoom),
            "camera_motion": camera_label(score, pan, tilt, zoom),
        }

    def drop_before(self, index: int) -> None:
        """Forget pairs that start before ``index`` (no clip still to come needs them)."""
        k = 0
        while k < len(self.pairs) and self.pairs[k][0] < index:
            k += 1
        del self.pairs[:k]


def camera_label(score: float, pan: float, tilt: float, zoom: float) -> str:
    """The ``camera_motion`` label; thresholds in the module docstring."""
    if score < STATIC:
        return "static"
    shift = float(np.hypot(pan, tilt))
    if abs(zoom) >= DOMINANT * score and abs(zoom) > shift:
        return "zoom_in" if zoom > 0 else "zoom_out"
    if shift >= DOMINANT * score:
        if abs(pan) >= abs(tilt):
            return "pan_left" if pan > 0 else "pan_right"
        return "tilt_up" if tilt > 0 else "tilt_down"
    return "complex"


def _median(x: np.ndarray) -> float:
    """``np.median`` of a small array by one partition: a third of its cost per flow pair.

    NaN-free input is assumed: a failed flow already makes the pair's mean magnitude NaN.
    """
    a = x.ravel()
    k = a.size // 2
    if a.size % 2:
        return float(np.partition(a, k)[k])
    p = np.partition(a, (k - 1, k))
    return float((p[k - 1] + p[k]) / 2)
