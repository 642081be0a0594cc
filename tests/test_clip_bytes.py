"""A stored clip's bytes depend on its frames alone: not on the heap or the machine's cores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Encodes one 192x144 clip (12 macroblocks wide: where x264's AVX-512 code read unwritten memory) and prints its md5.
ENCODE = """
import hashlib, numpy as np, av
from curate.config import EncodeConfig
from curate.media.encode import ClipEncoder
yy, xx = np.mgrid[0:144, 0:192]
frames = [av.VideoFrame.from_ndarray(np.dstack([(xx * 3 + yy + 5 * i) % 256, (yy * 2 - 3 * i) % 256, (xx ^ yy) % 256]).astype(np.uint8),
                                     format="rgb24").reformat(format="yuv420p") for i in range(40)]
enc = ClipEncoder(EncodeConfig(), frames[0], 0, 25.0)
for i, f in enumerate(frames):
    enc.add(f, i / 25)
print(hashlib.md5(enc.finish(40 / 25)).hexdigest())
"""


def _encode_in_child(perturb: int, cpus: set[int] | None = None) -> str:
    env = {**os.environ, "MALLOC_PERTURB_": str(perturb)}
    run = subprocess.run([sys.executable, "-c", ENCODE], env=env, capture_output=True, text=True, timeout=120,
                         preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


def test_the_same_frames_give_the_same_bytes_whatever_the_heap_held():
    """glibc fills fresh allocations with a different byte in each child: an encoder that reads memory it never wrote shows it."""
    assert len({_encode_in_child(p) for p in (0, 1, 77, 133)}) == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to compare with one")
def test_the_same_frames_give_the_same_bytes_on_one_core_and_on_two():
    both = sorted(os.sched_getaffinity(0))[:2]
    assert _encode_in_child(0, {both[0]}) == _encode_in_child(0, set(both))



def test_a_short_last_frame_is_stored_as_short():
    """A clip cut where its last frame is shown briefly (a source's end) lasts exactly its span."""
    import io

    import av
    import numpy as np

    from curate.config import EncodeConfig
    from curate.media.encode import ClipEncoder

    yy, xx = np.mgrid[0:144, 0:192]
    frames = [av.VideoFrame.from_ndarray(np.dstack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, (xx + yy) % 256]).astype(np.uint8),
                                         format="rgb24").reformat(format="yuv420p") for i in range(20)]
    for f in frames:
        f.pict_type = av.video.frame.PictureType.P  # as decoded from a source without B-frames
    enc = ClipEncoder(EncodeConfig(), frames[0], 0, 25.0)
    for i, f in enumerate(frames):
        enc.add(f, i / 25)
    with av.open(io.BytesIO(enc.finish(19 / 25 + 0.004))) as c:
        tb = c.streams.video[0].time_base
        last = list(c.decode(video=0))[-1]
    assert float(last.pts * tb) == pytest.approx(19 / 25, abs=1e-4) and float(last.duration * tb) == pytest.approx(0.004, abs=1e-4)
