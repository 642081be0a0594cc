"""libx264 settings under which a stored clip's bytes depend on its frames alone.

Same input, same output is a promise of both runners, of a rerun after a
crash and of a run on another machine. Left to its defaults, libx264 broke
it two ways (x264 core 165 under PyAV 18, measured on this project's
2-core machines):

* **AVX-512.** With mbtree on (every preset but ``ultrafast``) x264's
  AVX-512 code reads memory it never wrote when the frame width is not a
  multiple of 128 px (192, 432, 854, 960 px...): the bytes changed with
  ``MALLOC_PERTURB_`` and between runs of one pipeline, by up to 2 grey
  levels a frame. Held to AVX2 the output is the same every time, and the
  same as on a CPU without AVX-512. Where the CPU flags cannot be read
  (no ``/proc/cpuinfo``), x264 picks its own.
* **Threads.** x264's output depends on its thread count, which by default
  follows the machine's cores (as slices). A fixed two frame threads make
  it the same on every machine, and encoded 720p faster than the default
  here (224 against 201 frames/s).
* **Picture types** stay the source's (libx264 obeys a decoded frame's
  ``pict_type``). Letting x264 choose puts B-frames before a clip's last
  frame, which MP4 then cannot give its own duration: a 2.28 s clip of
  ``fire2.ts`` decoded as 2.38 s.
"""

from __future__ import annotations

import functools
from pathlib import Path


THREADS = 2
THREAD_TYPE = "FRAME"


@functools.cache
def x264_params() -> dict[str, str]:
    """Extra libx264 options: the instruction-set cap where the CPU has AVX-512, else none."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {"x264-params": "asm=AVX2"} if "avx512f" in flags else {}
