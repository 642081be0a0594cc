"""A stored clip's bytes depend on its frames alone: not on the heap, the machine's cores or the source's frame types."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import av
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


def test_the_clip_gets_its_own_frame_types_not_the_sources():
    """Frames decoded from an all-P source would otherwise force an all-P clip: x264 picks B-frames itself."""
    import numpy as np

    from curate.config import EncodeConfig
    from curate.media.encode import ClipEncoder

    yy, xx = np.mgrid[0:144, 0:192]
    frames = []
    for i in range(30):
        f = av.VideoFrame.from_ndarray(np.dstack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, (xx + yy) % 256]).astype(np.uint8), format="rgb24")
        f = f.reformat(format="yuv420p")
        f.pict_type = av.video.frame.PictureType.P  # as decoded from a source without B-frames
        frames.append(f)
    enc = ClipEncoder(EncodeConfig(), frames[0], 0, 25.0)
    for i, f in enumerate(frames):
        enc.add(f, i / 25)
    with av.open(io.BytesIO(enc.finish(30 / 25))) as c:
        types = [f.pict_type for f in c.decode(video=0)]
    assert len(types) == 30 and av.video.frame.PictureType.B in types
