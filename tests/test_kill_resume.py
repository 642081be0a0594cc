"""Kill a run at random moments (driver, Ray worker, whole process group), rerun,
and get exactly the clip set of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from curate.validate import validate
from tests.pipeline_helpers import make_inputs, read_table

pytestmark = pytest.mark.slow

PIPELINE = {
    "clips": {"min_s": 1.0, "max_s": 2.0},
    "output": {"shard_size_mb": 0.02},  # a commit every video or two: kills land inside commits too
    "limits": {"video_timeout_s": 60},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, dict[str, set[str]]]:
    root = tmp_path_factory.mktemp("kill")
    inputs = root / "in"
    make_inputs(inputs, 6)
    pipeline = root / "p.yaml"
    pipeline.write_text(yaml.safe_dump(PIPELINE))
    ref = root / "ref"
    _run(pipeline, inputs, ref, "local").wait(timeout=300)
    return pipeline, inputs, _clip_sets(ref)


def _run(pipeline: Path, inputs: Path, out: Path, runner: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "curate", "run", str(pipeline), "--input", str(inputs), "--output", str(out), "--runner", runner]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _clip_sets(out: Path) -> dict[str, set[str]]:
    sets = {t: list(read_table(out, t)["clip_id"]) for t in ("clips", "rejected")}
    for t, ids in sets.items():
        assert len(ids) == len(set(ids)), f"duplicate clip ids in {t}"
    return {t: set(ids) for t, ids in sets.items()}


def _finish_and_check(pipeline: Path, inputs: Path, out: Path, runner: str, expected: dict[str, set[str]]) -> None:
    assert _run(pipeline, inputs, out, runner).wait(timeout=600) == 0
    assert _clip_sets(out) == expected
    assert validate(str(out)) == []


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_driver_process_group_at_random_moments(setup, tmp_path: Path, seed: int):
    pipeline, inputs, expected = setup
    out = tmp_path / "out"
    rng = random.Random(seed)
    interrupted = 0
    for _ in range(3):
        proc = _run(pipeline, inputs, out, "local")
        time.sleep(rng.uniform(0.3, 2.5))  # a run takes ~3-10 s here
        interrupted += proc.poll() is None
        _kill_group(proc)
    assert interrupted, "no kill landed while the run was working"
    _finish_and_check(pipeline, inputs, out, "local", expected)


def test_kill_ray_driver_then_resume(setup, tmp_path: Path):
    pipeline, inputs, expected = setup
    out = tmp_path / "out"
    proc = _run(pipeline, inputs, out, "ray")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list((out / "_ledger").glob("*.parquet")):
        time.sleep(0.05)  # kill right after the first commit: work is committed and work is pending
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)  # the driver alone; Ray's processes follow it down
    proc.wait(timeout=60)
    _kill_group(proc)
    _finish_and_check(pipeline, inputs, out, "ray", expected)


def _ray_workers(root_pid: int, name: str) -> list[psutil.Process]:
    try:
        procs = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for p in procs:
        try:
            if name in " ".join(p.cmdline()) or name in p.name():
                found.append(p)
        except psutil.Error:
            continue
    return found


# A stage's map worker (Ray Data restarts it and retries), or a shard writer
# (the runner restarts it and sends its uncommitted blocks again).
@pytest.mark.parametrize("worker", ["MapWorker", "_WriterActor"])
def test_kill_a_ray_worker_mid_run(setup, tmp_path: Path, worker: str):
    pipeline, inputs, expected = setup
    out = tmp_path / "out"
    proc = _run(pipeline, inputs, out, "ray")
    deadline = time.monotonic() + 300  # Ray's start-up alone can take a minute on a loaded machine
    killed = False
    while time.monotonic() < deadline and proc.poll() is None and not killed:
        workers = _ray_workers(proc.pid, worker)
        if workers:
            time.sleep(1.0)
            workers[0].kill()
            killed = True
        time.sleep(0.2)
    assert killed, f"no Ray {worker} was seen to kill"
    try:
        proc.wait(timeout=300)  # Ray restarts the actor and retries, or the run fails: both are fine
    finally:
        _kill_group(proc)
    _finish_and_check(pipeline, inputs, out, "ray", expected)
