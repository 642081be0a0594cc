"""Technical quality per frame (cheap, on small luma) and per clip.

Per frame, from the grey frame the shot detector also sees: brightness
(mean / 255), contrast (std / 255) and black (mean below ``BLACK_LEVEL``).
Frozen is decided by the analysis stage, which already compares each frame's
48 px luma with the previous one: a repeat differs by less than
``FROZEN_LEVEL`` grey levels on average (re-encoded repeats measure about
0.2, the slowest natural motion about 0.5). Sharpness, the variance of the
Laplacian, is only measured on the frames sampled for a clip, at
``analysis.sample_width``.
"""

from __future__ import annotations

import cv2
import numpy as np

BLACK_LEVEL = 0.06  # mean luma (0..1) below which a frame counts as black
FROZEN_LEVEL = 0.3  # mean abs difference (0..255) at 48 px below which a frame is a repeat


class TechnicalStats:
    """Per-frame brightness/contrast/black/frozen, a few bytes per frame for the whole video."""

    def __init__(self) -> None:
        self._rows: list[tuple[float, float, bool, bool]] = []

    def consume(self, gray: np.ndarray, frozen: bool) -> None:
        """Add the next frame (uint8 grey, any small size); ``frozen``: it repeats its predecessor."""
        mean, std = cv2.meanStdDev(gray)
        b = float(mean[0, 0]) / 255.0
        self._rows.append((b, float(std[0, 0]) / 255.0, b < BLACK_LEVEL, frozen))

    def clip(self, start: int, end: int) -> dict[str, float]:
        """Means over frames ``start .. end-1``; the first frame's "frozen" compares to its predecessor
        inside the clip only, so a clip's first frame never counts as frozen."""
        rows = np.array(self._rows[start:end], dtype=np.float64)
        frozen = rows[1:, 3].sum() / len(rows) if len(rows) > 1 else 0.0
        return {
            "brightness": float(rows[:, 0].mean()),
            "contrast": float(rows[:, 1].mean()),
            "black_fraction": float(rows[:, 2].mean()),
            "frozen_fraction": float(frozen),
        }


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian of a uint8 grey image (0..255 scale)."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
