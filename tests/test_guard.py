"""The guard turns hangs, native crashes and exceptions into failed rows, and the run goes on."""

from __future__ import annotations

import time

from curate.runners.local import run_local
from tests.guarded_stages import Mark, Scripted


def _videos(*ids: str) -> list[dict]:
    return [{"video_id": i, "uri": f"/x/{i}", "status": "pending"} for i in ids]


def test_hang_crash_and_error_fail_only_their_video():
    t0 = time.monotonic()
    out = {v["video_id"]: v for v in run_local([Scripted(timeout_s=2.0), Mark()], _videos("a", "hang", "b", "crash", "boom", "c"))}
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0 + 15, "a hang must end at its limit plus a small margin"
    for ok in ("a", "b", "c"):
        assert out[ok]["status"] == "pending" and out[ok]["marked"]
    assert out["hang"]["status"] == "failed" and "timeout" in out["hang"]["reason"]
    assert out["crash"]["status"] == "failed" and "died" in out["crash"]["reason"]
    assert out["boom"]["status"] == "failed" and "ValueError: bad bitstream" in out["boom"]["reason"]
    assert "marked" not in out["hang"], "later stages skip failed videos"


def test_setup_runs_once_per_child_process():
    out = list(run_local([Scripted(timeout_s=30.0)], _videos("a", "b", "c")))
    assert len({v["pid"] for v in out}) == 1
    assert all(v["setup_pid"] == v["pid"] for v in out)


def test_unguarded_stage_records_exception():
    (v,) = run_local([Scripted()], _videos("boom"))
    assert v["status"] == "failed" and v["reason"].startswith("scripted: ValueError")
