"""The whole pipeline against an S3-compatible server (moto over HTTP, s3fs client): inputs in a bucket,
OUTPUT ``s3://bucket/out``, the lease lock, commits, resume after ``kill -9`` of the driver, refilter,
inspect/validate and the trainer's loader — each compared with the same steps on local disk."""

from __future__ import annotations

import json
import os
import posixpath
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from curate.output import manifest as mf
from curate.output.lock import LOCK, LockedError, acquire
from curate.output.shards import Location, read_table
from curate.validate import validate
from tests.pipeline_helpers import make_inputs
from tests.s3_server import S3, s3_server  # noqa: F401

PIPELINE = {"clips": {"min_s": 1.0, "max_s": 2.0}, "output": {"shard_size_mb": 0.02}, "limits": {"video_timeout_s": 60},
            "dedup": {"score": "sharpness"}}
TIGHTER = {**PIPELINE, "filter": {"min_motion": 0.6}}


def _curate(*args: str) -> subprocess.Popen:
    """``curate ARGS`` in its own session (so a test can kill its whole process group)."""
    return subprocess.Popen([sys.executable, "-m", "curate", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _ok(*args: str) -> str:
    proc = _curate(*args)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    return out


def committed(output: str, table: str, columns: list[str]) -> pa.Table:
    """``columns`` of the shards the manifest lists for ``table`` (what readers see)."""
    loc = Location.of(output)
    parts = [read_table(loc, e["path"], columns) for e in (mf.read(loc) or {}).get("shards", {}).get(table, [])]
    return pa.concat_tables(parts) if parts else pa.table({c: [] for c in columns})


def clip_keys(output: str, table: str) -> dict[str, tuple[str, int, int]]:
    """clip id -> (source file name, start frame, end frame): what a clip is, wherever its source lives
    (ids derive from the source URI, so the same clip has another id in a bucket than on disk)."""
    t = committed(output, table, ["clip_id", "source_uri", "start_frame", "end_frame"]).to_pylist()
    assert len({r["clip_id"] for r in t}) == len(t), f"duplicate clip ids in {table}"
    return {r["clip_id"]: (posixpath.basename(r["source_uri"]), r["start_frame"], r["end_frame"]) for r in t}


def clip_sets(output: str) -> dict[str, list]:
    return {t: sorted(clip_keys(output, t).values()) for t in ("clips", "review", "rejected")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s3in")
    make_inputs(root / "in", 4)
    for name, spec in (("p.yaml", PIPELINE), ("tighter.yaml", TIGHTER)):
        (root / name).write_text(yaml.safe_dump(spec))
    return root


@pytest.fixture(scope="module")
def reference(inputs: Path) -> dict[str, dict[str, list]]:
    """Clip sets of the same steps on local disk: the run, then the refilter."""
    out = str(inputs / "local-out")
    _ok("run", str(inputs / "p.yaml"), "--input", str(inputs / "in"), "--output", out, "--runner", "local")
    run = clip_sets(out)
    _ok("refilter", out, str(inputs / "tighter.yaml"))
    return {"run": run, "refilter": clip_sets(out)}


def _upload(s3: S3, inputs: Path) -> str:
    import fsspec

    bucket = s3.bucket()
    fsspec.filesystem("s3").put(str(inputs / "in") + "/", f"{bucket}/in/", recursive=True)
    return bucket


# -- the lease lock over HTTP ---------------------------------------------------------------------

def test_lease_refuses_a_live_holder_and_takes_over_a_dead_one(s3_server: S3) -> None:  # noqa: F811
    loc = Location.of(f"{s3_server.bucket()}/out")
    held = acquire(loc, "first")
    with pytest.raises(LockedError, match="in use by run first"):
        acquire(loc, "second")
    held.release()
    # A holder on this host that died without releasing (kill -9): its lease is taken over at once.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lease = {"run_id": "killed", "pid": dead.pid, "host": socket.gethostname(), "pidns": os.readlink("/proc/self/ns/pid"),
             "since": "then", "token": "t", "heartbeat": time.time()}
    loc.fs.pipe_file(loc.path(LOCK), json.dumps(lease).encode())
    acquire(loc, "third").release()
    # A holder on another host, or in another container with this host name, is judged by its heartbeat alone.
    for elsewhere in ({"host": "elsewhere"}, {"pidns": "pid:[1]"}, {"pidns": None}):
        loc.fs.pipe_file(loc.path(LOCK), json.dumps(dict(lease, **elsewhere)).encode())
        with pytest.raises(LockedError, match="killed"):
            acquire(loc, "fourth")


# -- the pipeline ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_run_refilter_inspect_and_load_on_s3(s3_server: S3, inputs: Path, reference, tmp_path: Path) -> None:  # noqa: F811
    from curate.data import BucketConfig, ClipDataset

    bucket = _upload(s3_server, inputs)
    out = f"{bucket}/out"
    _ok("run", str(inputs / "p.yaml"), "--input", f"{bucket}/in", "--output", out)  # Ray runner, embedded
    assert clip_sets(out) == reference["run"]
    assert validate(out) == []
    assert "already finished" in _ok("run", str(inputs / "p.yaml"), "--input", f"{bucket}/in", "--output", out, "--runner", "local")
    assert clip_sets(out) == reference["run"]
    assert "clips" in _ok("inspect", out)
    _ok("validate", "--decode", out)

    _ok("refilter", out, str(inputs / "tighter.yaml"))
    assert clip_sets(out) == reference["refilter"] != reference["run"]
    assert validate(out) == []
    assert not Location.of(out).fs.exists(Location.of(out).path(LOCK))  # every command released its lease

    ds = ClipDataset(out, BucketConfig.single(32, 32, 4, 2), shuffle=False)  # shards and bytes read from the bucket
    batches = list(ds)
    assert batches and all(b["video"].shape == (2, 4, 3, 32, 32) for b in batches)
    keys = clip_keys(out, "clips")
    assert sorted(keys[c] for b in batches for c, r in zip(b["clip_id"], b["repeated"].tolist()) if not r) == reference["refilter"]["clips"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kill_the_driver_then_resume_on_s3(s3_server: S3, inputs: Path, reference, seed: int) -> None:  # noqa: F811
    """kill -9 of the driver's process group at random moments (inside commits too), then the same command again."""
    bucket = _upload(s3_server, inputs)
    out = f"{bucket}/out"
    cmd = ("run", str(inputs / "p.yaml"), "--input", f"{bucket}/in", "--output", out, "--runner", "local")
    rng = random.Random(seed)
    interrupted = 0
    for _ in range(3):
        proc = _curate(*cmd)
        time.sleep(rng.uniform(2.0, 8.0))  # a run takes ~15-25 s against the server here
        interrupted += proc.poll() is None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)
    assert interrupted, "no kill landed while the run was working"
    _ok(*cmd)  # the dead driver's lease is taken over at once: it ran on this host
    assert clip_sets(out) == reference["run"]
    assert validate(out) == []


@pytest.mark.slow
def test_kill_the_ray_driver_after_its_first_commit_then_resume_on_s3(s3_server: S3, inputs: Path, reference) -> None:  # noqa: F811
    """Work committed and work pending in the bucket when the driver dies; Ray's processes follow it down."""
    bucket = _upload(s3_server, inputs)
    out = f"{bucket}/out"
    loc = Location.of(out)
    cmd = ("run", str(inputs / "p.yaml"), "--input", f"{bucket}/in", "--output", out)
    proc = _curate(*cmd)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not [n for n in loc.names("_ledger") if n.endswith(".parquet")]:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    _ok(*cmd)
    assert clip_sets(out) == reference["run"]
    assert validate(out) == []
