"""Drop known-benign lines that native code writes straight to file descriptor 2.

Ray's C++ core worker logs an ERROR whenever an actor with constructor
arguments in the object store may be restarted. Ray Data always puts its map
function there and enables restarts (what lets a run survive a lost worker), so
the line appears on every run, means nothing to act on, and lands in the middle
of the progress bar. A logger level cannot reach it (it is not Python logging),
and turning Ray's native log level down would hide real errors too.

:func:`filtered_native_stderr` routes fd 2 through a pipe: lines matching
:data:`BENIGN` are dropped, every other line is written to ``sys.stderr`` —
which rich's live display redirects above the bar. Python's own ``sys.stderr``
keeps writing to the terminal, so rich still sees a TTY.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from typing import Iterator

BENIGN = (re.compile(r"core_worker\.cc:\d+: Actor with class name: .* has constructor arguments in the object store and max_restarts > 0"),)


def _forward(read_fd: int) -> None:
    with io.open(read_fd, "rb", closefd=True) as pipe:
        for raw in pipe:
            line = raw.decode("utf-8", "replace")
            if any(p.search(line) for p in BENIGN):
                continue
            try:
                sys.stderr.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):  # stderr closed at interpreter exit
                return


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Inside the block, fd 2 (native code's stderr) is filtered; Python's ``sys.stderr`` is not."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters, closed stderr)
        yield
        return
    read_fd, write_fd = os.pipe()
    python_stderr = sys.stderr
    terminal = io.TextIOWrapper(io.FileIO(saved, "w", closefd=False), encoding=python_stderr.encoding, errors="backslashreplace", line_buffering=True)
    sys.stderr = terminal
    os.dup2(write_fd, 2)
    os.close(write_fd)
    # Daemon: processes started inside the block keep the pipe's write end, so EOF may
    # come only at exit; the thread then just keeps forwarding their lines.
    threading.Thread(target=_forward, args=(read_fd,), name="curate-stderr-filter", daemon=True).start()
    try:
        yield
    finally:
        terminal.flush()
        os.dup2(saved, 2)
        sys.stderr = python_stderr
        terminal.close()  # the fd itself is closed on the next line
        os.close(saved)
