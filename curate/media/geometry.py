"""Displayed sizes: the one place that knows a quarter turn swaps width and height.

A source's frames are *coded* at ``width`` x ``height``; players show them
rotated by the container's display rotation and stretched by the sample
aspect ratio (SAR). Probe, analysis, encode and rewrites all ask here.
"""

from __future__ import annotations

from fractions import Fraction


def rotated(width: int, height: int, rotation: int) -> tuple[int, int]:
    """``(width, height)`` as shown after ``rotation`` degrees: swapped by a quarter turn."""
    return (height, width) if rotation % 180 else (width, height)


def display_size(width: int, height: int, rotation: int, sar: float | Fraction | None = None) -> tuple[int, int]:
    """Displayed size of coded ``width`` x ``height`` pixels: the width scaled by the SAR (to an even number), then rotated."""
    if sar and sar > 0 and abs(float(sar) - 1.0) > 1e-3:
        width = max(2, 2 * round(width * float(sar) / 2))
    return rotated(width, height, rotation)
