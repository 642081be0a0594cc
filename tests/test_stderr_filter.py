"""Native stderr noise is dropped line by line; everything else still reaches the user."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import os, sys
from curate.stderr_filter import filtered_native_stderr
with filtered_native_stderr():
    os.write(2, b"[2026-11-26 07:12:28,463 E 7673 7673] core_worker.cc:2465: Actor with class name: 'MapWorker(MapBatches(_StageActor))' and ID: 'ab' has constructor arguments in the object store and max_restarts > 0. If the arguments ...\n")
    os.write(2, b"[E] raylet: a real native error\n")
    print("python still writes to stderr", file=sys.stderr)
    sys.stderr.flush()
    import time; time.sleep(0.3)
os.write(2, b"after the block\n")
"""


def test_benign_native_lines_are_dropped_and_real_ones_kept():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "constructor arguments in the object store" not in r.stderr
    assert "a real native error" in r.stderr
    assert "python still writes to stderr" in r.stderr and "after the block" in r.stderr
