"""64-bit DCT perceptual hash (the ``imagehash.phash`` recipe, with ``cv2.dct``)."""

from __future__ import annotations

import cv2
import numpy as np


def phash(rgb: np.ndarray) -> str:
    """pHash of an RGB (or grey) uint8 image as 16 hex digits.

    The image is reduced to 32x32 grey; each bit of the 8x8 lowest DCT
    frequencies says whether that coefficient exceeds their median. Near
    duplicates differ in few bits (compare with :func:`hamming`).
    """
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8]
    bits = (low > np.median(low)).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")
