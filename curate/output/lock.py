"""One writer per OUTPUT: two runs interleaving commits would break the ledger order.

Local paths use ``fcntl.flock`` on ``OUTPUT/.lock``. The kernel drops the lock
when the holding process dies (even by ``kill -9``), so it never goes stale;
the file's JSON content only names the holder for the refusal message and is
left in place (deleting a flock file races with the next opener). A process
forked from the holder (not exec'd) shares the lock until it exits.

Object stores have no locks, so there ``OUTPUT/.lock`` is a lease: JSON with
run id, pid, host, a random token and a heartbeat timestamp that a daemon
thread refreshes every ``stale_after_s / 4``. A lease whose heartbeat is older
than ``stale_after_s`` (10 minutes by default) counts as abandoned and is
taken over, and so does one whose holder ran on this host, in this PID
namespace, and is gone: a driver killed with ``kill -9`` is resumed at once,
not after the lease runs out (a holder elsewhere is judged by its heartbeat
alone). This is best effort: without a compare-and-swap two writers
starting within the same instant could both win; the read-back after writing
and the token check before every commit (:meth:`Lock.check`) narrow that window.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from curate.output.manifest import now
from curate.output.shards import Location

LOCK = ".lock"
STALE_AFTER_S = 600.0


class LockedError(RuntimeError):
    """Another run holds the output."""


def _holder(root: str, info: dict[str, Any] | None) -> str:
    if not info:
        return f"OUTPUT {root} is in use by another run (its lock file gives no details)"
    return (f"OUTPUT {root} is in use by run {info.get('run_id')} "
            f"(pid {info.get('pid')} on host {info.get('host')}) since {info.get('since')}")


def _info(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(), "pidns": _pid_namespace(), "since": now()}


def _pid_namespace() -> str | None:
    """This process's PID namespace (Linux): containers sharing a host name do not share their pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


class Lock:
    """A held lock; :meth:`release` it at close."""

    def check(self) -> None:
        """Raise :class:`LockedError` if the lock was lost (leases only)."""

    def release(self) -> None:
        raise NotImplementedError


class FileLock(Lock):
    def __init__(self, loc: Location, run_id: str):
        path = loc.path(LOCK)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = os.pread(self._fd, 1 << 16, 0)
            os.close(self._fd)
            raise LockedError(_holder(loc.root, _parse(held))) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(_info(run_id)).encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class LeaseLock(Lock):
    def __init__(self, loc: Location, run_id: str, stale_after_s: float = STALE_AFTER_S):
        self._loc, self._path = loc, loc.path(LOCK)
        held = self._read()
        if held and time.time() - float(held.get("heartbeat", 0)) < stale_after_s and not _gone(held):
            raise LockedError(_holder(loc.root, held))
        self._info = dict(_info(run_id), token=uuid.uuid4().hex, heartbeat=time.time())
        loc.fs.pipe_file(self._path, json.dumps(self._info).encode())
        self.check()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(stale_after_s / 4,), daemon=True)
        self._thread.start()

    def _read(self) -> dict[str, Any] | None:
        try:
            return _parse(self._loc.fs.cat_file(self._path))
        except FileNotFoundError:
            return None

    def _beat(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            if (self._read() or {}).get("token") != self._info["token"]:
                return
            self._info["heartbeat"] = time.time()
            self._loc.fs.pipe_file(self._path, json.dumps(self._info).encode())

    def check(self) -> None:
        held = self._read()
        if (held or {}).get("token") != self._info["token"]:
            raise LockedError(_holder(self._loc.root, held) + "; this run lost its lease")

    def release(self) -> None:
        self._stop.set()
        if (self._read() or {}).get("token") == self._info["token"]:
            self._loc.fs.rm_file(self._path)


def _gone(held: dict[str, Any]) -> bool:
    """Whether the lease's holder ran on this host (and PID namespace) and its process no longer exists."""
    here = held.get("host") == socket.gethostname() and held.get("pidns") is not None and held.get("pidns") == _pid_namespace()
    if not here or not isinstance(held.get("pid"), int) or held["pid"] == os.getpid():
        return False
    try:
        os.kill(held["pid"], 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, another user's
        pass
    return False


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        return json.loads(data) or None
    except ValueError:
        return None


def acquire(loc: Location, run_id: str, stale_after_s: float = STALE_AFTER_S) -> Lock:
    """Lock ``loc`` for ``run_id`` or raise :class:`LockedError` naming the holder."""
    return FileLock(loc, run_id) if loc.local else LeaseLock(loc, run_id, stale_after_s)
