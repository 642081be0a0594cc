"""kill -9 of the review server loses no decision it acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from curate.review.db import open_db
from curate.review.queue import Queue
from tests.review_helpers import free_port


def _serve(out: Path, port: int, db: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "curate", "review", "serve", str(out), "--port", str(port), "--db", db,
           "--qa-accepted-rate", "1", "--qa-rejected-rate", "1", "--double-review-rate", "1"]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/counts", timeout=1)
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode())
            time.sleep(0.1)
    raise RuntimeError("server did not start")


@pytest.mark.slow
def test_acknowledged_decisions_survive_kill_9(review_out: Path, db_url: str) -> None:
    """On SQLite (WAL, synchronous=FULL) and on PostgreSQL: every decision the server answered 200 to is there."""
    port = free_port()
    proc = _serve(review_out, port, db_url)
    acked: list[int] = []
    stop = threading.Event()

    def annotate(name: str) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            while not stop.is_set():
                try:
                    got = c.post("/api/lease", json={"annotator": name, "n": 1}).json()["clips"]
                    if not got:
                        # Undo and decide again, so decisions keep coming until the kill.
                        c.post("/api/undo", json={"annotator": name})
                        continue
                    r = c.post("/api/decide", json={"annotator": name, "clip_id": got[0]["clip_id"],
                                                    "token": got[0]["token"], "decision": "approve"})
                    if r.status_code == 200:
                        acked.append(r.json()["id"])
                except (httpx.HTTPError, ValueError, KeyError):
                    return  # the server is gone

    threads = [threading.Thread(target=annotate, args=(n,)) for n in ("ann", "bob")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 12
    ids = {h["id"] for h in Queue(open_db(db_url)).history()}
    assert set(acked) <= ids, f"lost {sorted(set(acked) - ids)}"
    # and the server starts again on the same database
    proc = _serve(review_out, port, db_url)
    try:
        counts = httpx.get(f"http://127.0.0.1:{port}/api/counts").json()
        assert counts["total"] == 16 and counts["leased"] <= 2
    finally:
        proc.kill()
        proc.wait()
