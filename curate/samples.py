"""Generate a small demo input set: ``python -m curate.samples DIR``.

Used by ``make demo`` when ``../shared/media/videos`` is absent, so the first
command of the README works on any fresh machine. The videos have hard cuts,
a dissolve, a fade, static and moving shots, so every stage has work to do.
"""

from __future__ import annotations

import sys
from pathlib import Path

from curate.synth import make_video

SAMPLES = {
    "cuts_and_pans.mp4": [(75, "pan_left"), (75, "moving"), (50, "static"), (75, "tilt_up")],
    "dissolve_and_fade.mp4": [(75, "zoom_in"), ("dissolve", 15), (75, "pan_right"), ("fade", 20), (75, "moving")],
    "static_and_black.mp4": [(100, "static"), (40, "black"), (100, "smooth")],
}


def make_samples(directory: str | Path) -> list[Path]:
    """Write the sample videos into ``directory`` and return their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, shots) in enumerate(SAMPLES.items()):
        make_video(out / name, shots, size=(640, 360), fps=25, seed=i)
        paths.append(out / name)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m curate.samples DIR")
    for p in make_samples(sys.argv[1]):
        print(p)
