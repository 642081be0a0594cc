"""Run a stage's per-video work in a supervised child process.

Decoders can hang or crash inside native code (a named pipe that never
delivers data, a corrupt bitstream that trips a segfault); no Python timeout
can interrupt that. The guard keeps one long-lived child per stage instance
(so models and codecs are set up once), sends it one video at a time, and
kills and replaces it when a video overruns its limit or the child dies.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Iterator

SETUP_TIMEOUT_S = 600.0
TEARDOWN_TIMEOUT_S = 10.0  # a child still busy after this is killed


class GuardError(RuntimeError):
    """The child overran its time limit or died; ``key`` says which (``timeout``), the message how."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _watch_parent(parent_pid: int) -> None:
    # A killed parent must not leave a child stuck in a hung decode behind.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(3)


def _serve(conn: Connection, parent_pid: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    stage = pickle.loads(conn.recv())
    try:
        stage.setup()
    except Exception as e:  # noqa: BLE001 - reported to the parent
        conn.send(("setup-error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            video = conn.recv()
        except EOFError:  # the parent is done with this worker (Guard.close): release, then exit
            stage.teardown()
            return
        try:
            for out in stage.stream_captured(video):  # clip pieces as they are made, the record last
                conn.send(("out", out))
                del out  # sent: not held while the next piece is made
            conn.send(("end", None))
        except OSError:  # the parent gave up on this video (interrupted, or timed out): just exit
            return


class Guard:
    """One supervised worker process for a :class:`~curate.stage.VideoStage`."""

    def __init__(self, stage: Any) -> None:
        self._blob = pickle.dumps(stage)
        self._name = stage.name
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: _Duplex | None = None
        self._busy = False  # a video was sent and its result not read (the call was cut short)

    def start(self) -> None:
        """Start the child and wait until its ``setup()`` is done."""
        # A fresh interpreter (not fork: Ray workers are multi-threaded; not
        # multiprocessing's spawn: it re-imports the caller's __main__).
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-m", "curate.guard", str(down_r), str(up_w), str(os.getpid())],
            pass_fds=(down_r, up_w),
            close_fds=True,
            # Never the terminal: a Ray worker sits in a background process group, and a
            # child there that reads or configures the tty (ffmpeg's key handling does)
            # gets SIGTTIN/SIGTTOU, which stops the whole group and hangs the run. A
            # session of its own has no controlling terminal at all.
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # The child must import whatever the parent could (stage classes may live anywhere).
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        os.close(down_r)
        os.close(up_w)
        conn = _Duplex(Connection(up_r, writable=False), Connection(down_w, readable=False))
        conn.send(self._blob)
        if not conn.poll(SETUP_TIMEOUT_S):
            proc.kill()
            raise GuardError("setup timeout", f"worker did not finish setup within {SETUP_TIMEOUT_S:.0f}s")
        kind, msg = self._recv(conn, proc)
        if kind != "ready":
            proc.wait(5)
            raise GuardError("setup failed", f"setup failed: {msg}")
        self._proc, self._conn = proc, conn

    def _recv(self, conn: Any, proc: Any) -> tuple[str, Any]:
        try:
            return conn.recv()
        except (EOFError, OSError):
            code = proc.wait(5)
            self._proc = self._conn = None
            raise GuardError("worker process died", f"worker process died (exit code {code})") from None

    def stream(self, video: dict[str, Any], timeout_s: float) -> Iterator[dict[str, Any]]:
        """Process one video in the child: its clip pieces as they come, then its record.

        ``timeout_s`` limits the child's time on the whole video; raises :class:`GuardError` on timeout or crash.
        """
        if self._busy:  # the last stream was left unread: its child may still be sending that video's pieces
            self.close(graceful=False)
        if self._proc is None or self._proc.poll() is not None:
            self.start()
        proc, conn = self._proc, self._conn
        self._busy = True
        conn.send(video)
        deadline = time.monotonic() + timeout_s
        while True:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                self.close(graceful=False)
                raise GuardError("timeout", f"timeout: no result within {timeout_s:g}s (limits.video_timeout_s)")
            kind, out = self._recv(conn, proc)
            if kind == "end":
                self._busy = False
                return
            held = time.monotonic()
            yield out
            del out  # not held while the child makes the next piece
            deadline += time.monotonic() - held  # the caller's time on a piece (the local runner takes it through every later stage) is not the child's

    def call(self, video: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Process one video in the child and return its record (for stages that send no pieces)."""
        *_, out = self.stream(video, timeout_s)
        return out

    def close(self, graceful: bool = True) -> None:
        """End the child: ``graceful`` lets it run the stage's ``teardown()`` first (up to
        :data:`TEARDOWN_TIMEOUT_S`); otherwise, or when a call was cut short (Ctrl-C while the
        child works on a video), it is killed at once."""
        graceful = graceful and not self._busy
        self._busy = False
        if self._conn is not None:
            self._conn.close()  # the child reads EOF: teardown, exit
        if self._proc is not None:
            try:
                if not graceful:
                    raise subprocess.TimeoutExpired(self._proc.args, 0)
                self._proc.wait(TEARDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = self._conn = None

    def __del__(self) -> None:
        try:
            self.close(graceful=False)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _Duplex:
    """Two one-way connections used as one (pipes passed to a subprocess)."""

    def __init__(self, rx: Connection, tx: Connection) -> None:
        self.rx, self.tx = rx, tx

    def send(self, obj: Any) -> None:
        self.tx.send(obj)

    def recv(self) -> Any:
        return self.rx.recv()

    def poll(self, timeout: float) -> bool:
        return self.rx.poll(timeout)

    def close(self) -> None:
        self.rx.close()
        self.tx.close()


if __name__ == "__main__":
    _down, _up, _parent = (int(a) for a in sys.argv[1:4])
    _serve(_Duplex(Connection(_down, writable=False), Connection(_up, readable=False)), _parent)
