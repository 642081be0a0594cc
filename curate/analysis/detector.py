"""The shot-detector interface: frames in order, boundaries out.

A boundary is a span of frames that belongs to no shot: ``Boundary(i, i)`` is
a hard cut (frame ``i`` starts the new shot), ``Boundary(s, e)`` a gradual
transition whose frames ``s .. e-1`` are excluded from every clip. The
detectors themselves are in :mod:`curate.analysis.shots` (PySceneDetect's,
and the fade/dissolve detector) and :mod:`curate.analysis.transnet`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

# The frame size that shot detection compares frames at (PySceneDetect-style
# 48x27 grey, and TransNetV2's input size): compression noise averages out.
TINY_SIZE = (48, 27)
# A gradual transition's first and last frames may change too little to see (an iris covers p^2 of the picture at
# progress p: 5 % of it at p = 0.22), so a found one is excluded with 1/FAINT of its length more on each side.
FAINT = 4


@dataclass(frozen=True, order=True)
class Boundary:
    """Frames ``start .. end-1`` are a transition; ``start == end`` is a hard cut at ``start``."""

    start: int
    end: int

    @property
    def is_cut(self) -> bool:
        return self.start == self.end


def with_faint_ends(b: Boundary, lo: int, hi: int, most: int | None = None, faint: int = FAINT) -> Boundary:
    """``b`` (a gradual transition) with ``1/faint`` of its length, rounded up and at most ``most`` frames, more on
    each side, within ``[lo, hi]``."""
    pad = -(-(b.end - b.start) // faint)
    if most is not None:
        pad = min(pad, most)
    return Boundary(max(lo, b.start - pad), min(hi, b.end + pad))


class ShotDetector(ABC):
    """Streaming detector: frames in order, boundaries out (possibly for earlier frames)."""

    @abstractmethod
    def process_frame(self, index: int, small_bgr: np.ndarray) -> list[Boundary]:
        """Consume frame ``index`` (sequential from 0); return boundaries found so far."""

    def post_process(self, last_index: int) -> list[Boundary]:
        """No more frames: report what is still pending."""
        return []

    @abstractmethod
    def settled(self) -> int:
        """No boundary reported from now on will touch a frame before this index."""
