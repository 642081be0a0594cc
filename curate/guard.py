"""Run a stage's per-video work in a supervised child process.

Decoders can hang or crash inside native code (a named pipe that never
delivers data, a corrupt bitstream that trips a segfault); no Python timeout
can interrupt that. The guard keeps one long-lived child per stage instance
(so models and codecs are set up once), sends it one video at a time, and
kills and replaces it when a video overruns its limit or the child dies.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import threading
import time
from typing import Any

SETUP_TIMEOUT_S = 600.0


class GuardError(RuntimeError):
    """The child overran its time limit or died; the message says which."""


def _watch_parent(parent_pid: int) -> None:
    # A killed parent must not leave a child stuck in a hung decode behind.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(3)


def _serve(conn: Any, stage_blob: bytes, parent_pid: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    stage = pickle.loads(stage_blob)
    try:
        stage.setup()
    except Exception as e:  # noqa: BLE001 - reported to the parent
        conn.send(("setup-error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            video = conn.recv()
        except EOFError:
            return
        conn.send(("ok", stage.run_captured(video)))


class Guard:
    """One supervised worker process for a :class:`~curate.stage.VideoStage`."""

    def __init__(self, stage: Any) -> None:
        self._blob = pickle.dumps(stage)
        self._name = stage.name
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self._blob, os.getpid()), daemon=True, name=f"curate-{self._name}")
        proc.start()
        child.close()
        if not parent.poll(SETUP_TIMEOUT_S):
            proc.kill()
            raise GuardError(f"worker did not finish setup within {SETUP_TIMEOUT_S:.0f}s")
        kind, msg = self._recv(parent, proc)
        if kind != "ready":
            proc.join(5)
            raise GuardError(f"setup failed: {msg}")
        self._proc, self._conn = proc, parent

    def _recv(self, conn: Any, proc: Any) -> tuple[str, Any]:
        try:
            return conn.recv()
        except (EOFError, OSError):
            proc.join(5)
            self._proc = self._conn = None
            raise GuardError(f"worker process died (exit code {proc.exitcode})") from None

    def call(self, video: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Process one video in the child; raise :class:`GuardError` on timeout or crash."""
        if self._proc is None or not self._proc.is_alive():
            self._start()
        proc, conn = self._proc, self._conn
        conn.send(video)
        if not conn.poll(timeout_s):
            self.close()
            raise GuardError(f"timeout: no result within {timeout_s:g}s (limits.video_timeout_s)")
        kind, out = self._recv(conn, proc)
        return out

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
