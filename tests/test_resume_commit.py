"""Crash at any point of a commit, reopen, finish: every clip exactly once.

Two ways to crash: monkeypatching a step of the commit protocol to raise
(deterministic, one test per crash point), and SIGKILL of a real writer
process at random moments (what the issue measures).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from curate.output import OutputStore, shards
from curate.output import writer as shards_writer
from curate.output import manifest as mf
from curate.output import store as store_module
from curate.output.shards import Location
from curate.validate import validate
from tests.test_output_store import REPO, expected_ids, fake_video, small_config


class Crash(BaseException):
    """Stands for the process dying: nothing catches it."""


def crash_on(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, when: Callable[..., bool], skip: int = 1) -> None:
    """Make ``module.name`` raise :class:`Crash` on its ``skip + 1``-th call for which ``when(*args)`` holds."""
    real, left = getattr(module, name), [skip]

    def fake(*args: Any, **kwargs: Any) -> Any:
        if when(*args):
            if left[0] == 0:
                raise Crash(name)
            left[0] -= 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fake)


def all_ids(out: str) -> list[str]:
    """Every clip id in committed-looking files (what a plain glob sees), duplicates kept."""
    loc = Location.of(out)
    ids = []
    for table in ("clips", "rejected"):
        for name in loc.names(table):
            if name.endswith(".parquet"):
                ids += shards.read_table(loc, f"{table}/{name}", ["clip_id"])["clip_id"].to_pylist()
    return ids


def manifest_lists_only_committed(out: str) -> bool:
    loc = Location.of(out)
    doc = mf.read(loc)
    committed = {n.removesuffix(".parquet") for n in loc.names(shards.LEDGER_DIR)}
    return doc is None or all(e["part"] in committed for entries in doc["shards"].values() for e in entries)


def crash_then_resume(monkeypatch: pytest.MonkeyPatch, out: str, n: int = 30) -> list[str]:
    """Add videos until the patched step crashes, 'die', reopen unpatched and finish.

    Returns what recovery removed on reopening.
    """
    store = OutputStore.open(out, small_config(shard_mb=0.015))
    with pytest.raises(Crash):
        for i in range(n):
            store.add(fake_video(i))
        store.close()
    store._lock.release()  # what the kernel does when the process dies
    assert manifest_lists_only_committed(out)
    monkeypatch.undo()
    return resume(out, n)


def resume(out: str, n: int) -> list[str]:
    with OutputStore.open(out, small_config(shard_mb=0.015)) as store:
        removed = store.recovered
        finished = store.finished_ids()
        for i in range(n):
            if f"vid{i:05d}" not in finished:
                store.add(fake_video(i))
    return removed


def assert_exactly_once(out: str, n: int) -> None:
    ids = all_ids(out)
    assert len(ids) == len(set(ids)), "duplicate clip ids"
    assert set(ids) == expected_ids(range(n)) | expected_ids(range(n), "rejected")
    assert validate(out) == []


LEDGER = "/_ledger/"


@pytest.mark.parametrize("point,module,name,when,interrupted", [
    ("writing the ledger temp file", shards, "_write", lambda loc, path, *_: LEDGER in path, True),
    ("before the first rename", shards, "_rename", lambda src, dst: "/clips/" in dst, True),
    ("between data renames", shards, "_rename", lambda src, dst: "/rejected/" in dst, True),
    ("before the ledger rename", shards, "_rename", lambda src, dst: LEDGER in dst, True),
    ("after the ledger rename, before the manifest", mf, "write", lambda *_: True, False),
])
def test_crash_during_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, module: Any, name: str,
                             when: Callable[..., bool], interrupted: bool) -> None:
    out = str(tmp_path / "out")
    crash_on(monkeypatch, module, name, when, skip=2)
    removed = crash_then_resume(monkeypatch, out)
    assert bool(removed) == interrupted, f"crash {point}: recovery removed {removed}"
    assert not list(tmp_path.rglob("*.tmp"))
    assert_exactly_once(out, 30)


def test_crash_on_object_store_before_the_ledger_part(monkeypatch: pytest.MonkeyPatch) -> None:
    out = f"memory://curate-test-{time.monotonic_ns()}/out"
    crash_on(monkeypatch, shards, "_write", lambda loc, path, *_: LEDGER in path, skip=2)
    removed = crash_then_resume(monkeypatch, out)
    assert removed and all(r.startswith(("clips/", "rejected/")) for r in removed)  # final names, no ledger part
    assert_exactly_once(out, 30)


def test_crash_while_closing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = str(tmp_path / "out")
    crash_on(monkeypatch, store_module, "write_tables", lambda loc, rel, *_: rel == "videos.parquet", skip=0)
    crash_then_resume(monkeypatch, out)
    assert_exactly_once(out, 30)


def test_crashed_output_validates_only_after_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = str(tmp_path / "out")
    crash_on(monkeypatch, shards, "_rename", lambda src, dst: LEDGER in dst, skip=1)
    store = OutputStore.open(out, small_config(shard_mb=0.015))
    with pytest.raises(Crash):
        for i in range(30):
            store.add(fake_video(i))
    store._lock.release()
    problems = validate(out)
    assert any("did not close" in p for p in problems) and any("orphan" in p for p in problems)
    monkeypatch.undo()
    resume(out, 30)
    runs = json.loads(Path(out, "manifest.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["crashed", "completed"]
    assert_exactly_once(out, 30)


# -- SIGKILL of a real writer --------------------------------------------------------------

WRITER = """
import random, sys, time
from curate.output import OutputStore, shards
from curate.output import writer as shards_writer
from tests.test_output_store import fake_video, small_config
out, n, seed, fail_p = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
real_rename = shards._rename
def slow_rename(src, dst):  # widen the windows between the renames of a commit, where a kill hurts most
    time.sleep(0.003)
    real_rename(src, dst)
shards._rename = slow_rename
rng = random.Random(seed)
with OutputStore.open(out, small_config(shard_mb=0.004)) as store:
    print("recovered", len(store.recovered), flush=True)
    finished = store.finished_ids()
    for i in range(n):
        if f"vid{i:05d}" not in finished:
            failed = rng.random() < fail_p
            store.add(fake_video(i, "failed" if failed else "rejected" if i % 7 == 6 else "done"))
"""


def kill_loop(out: str, kills: int, n: int, seed: int) -> int:
    """Kill a writer ``kills`` times at random moments, then let one finish; check the output.

    Returns how many reopenings had an interrupted commit to clean up.
    """
    rng = random.Random(seed)
    recoveries = 0
    for attempt in range(kills + 1):
        final = attempt == kills
        args = [sys.executable, "-c", WRITER, out, str(n), str(attempt), "0" if final else "0.2"]
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = ""
        if not final:
            # Time the kill from when the writer has opened OUTPUT, not from its start:
            # on a loaded machine interpreter start-up alone can outlast a fixed delay.
            first = proc.stdout.readline()
            time.sleep(rng.uniform(0.0, 1.0))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        stdout, err = proc.communicate()
        stdout = first + stdout
        assert proc.returncode == 0 or (not final and proc.returncode == -signal.SIGKILL), err
        recoveries += any(line.startswith("recovered ") and line != "recovered 0" for line in stdout.splitlines())
        assert manifest_lists_only_committed(out)
    ids = all_ids(out)
    assert len(ids) == len(set(ids)), "duplicate clip ids"
    kept = [i for i in range(n) if i % 7 != 6]
    assert set(ids) == expected_ids(kept) | expected_ids(kept, "rejected")
    assert validate(out) == []
    assert json.loads(Path(out, "manifest.json").read_text())["funnel"]["videos"]["failed"] == 0
    return recoveries


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    kill_loop(str(tmp_path / "out"), kills=3, n=60, seed=1)


@pytest.mark.slow
def test_sigkill_at_random_moments_many(tmp_path: Path) -> None:
    assert kill_loop(str(tmp_path / "out"), kills=30, n=200, seed=2) > 0, "no kill landed inside a commit"


# -- commits of files a worker staged (the Ray runner's writers) ---------------------------

def _stage_all(store: OutputStore, n: int) -> list[shards_writer.Staged]:
    """What a shard writer of ``store``'s run stages for ``n`` videos (no Ray: the object a writer actor holds)."""
    spec = shards_writer.WriterSpec(store.location.url, store.tag, store.rows, store.target_bytes, store.row_group_rows)
    writer = shards_writer.ShardWriter(spec)
    staged = [s for i in range(n) for s in writer.add([fake_video(i)])[1]]
    return staged + [s for s in [writer.flush()] if s]


@pytest.mark.parametrize("point,module,name,when", [
    ("before the first move", shards, "_rename", lambda src, dst: "/.w-" in src),
    ("before the ledger rename", shards, "_rename", lambda src, dst: LEDGER in dst),
])
def test_crash_while_committing_staged_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, module: Any,
                                             name: str, when: Callable[..., bool]) -> None:
    out = str(tmp_path / "out")
    crash_on(monkeypatch, module, name, when, skip=1)
    store = OutputStore.open(out, small_config(shard_mb=0.015))
    staged = _stage_all(store, 30)
    assert len(staged) > 2 and all(f.temp.rsplit("/", 1)[1].startswith(".w-") for s in staged for f in s.files)
    with pytest.raises(Crash):
        for s in staged:
            store.commit_staged(s)
    store._lock.release()  # what the kernel does when the process dies
    assert manifest_lists_only_committed(out)
    monkeypatch.undo()
    with OutputStore.open(out, small_config(shard_mb=0.015)) as store:
        assert store.recovered, f"crash {point}: nothing of the interrupted commit was removed"
        finished = store.finished_ids()
        for i in range(30):
            if f"vid{i:05d}" not in finished:
                store.add(fake_video(i))
    assert not list(tmp_path.rglob("*.tmp"))
    assert_exactly_once(out, 30)


def test_staged_commits_on_an_object_store(monkeypatch: pytest.MonkeyPatch) -> None:
    out = f"memory://curate-test-{time.monotonic_ns()}/out"
    with OutputStore.open(out, small_config(shard_mb=0.015)) as store:
        for s in _stage_all(store, 30):
            store.commit_staged(s)
    loc = Location.of(out)
    assert not [n for t in shards.TABLES for n in loc.names(t) if n.startswith(".w-")]  # copied to part names, then removed
    assert_exactly_once(out, 30)


def test_staged_files_never_committed_are_removed_at_close(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    with OutputStore.open(out, small_config(shard_mb=0.015)) as store:
        staged = _stage_all(store, 30)
        store.commit_staged(staged[0])  # the others stand for files of a writer that died before its commit
    assert not list(tmp_path.rglob(".w-*"))
    assert validate(out) == []
    ids = all_ids(out)
    assert len(ids) == len(set(ids)) and set(ids) and set(ids) < expected_ids(range(30)) | expected_ids(range(30), "rejected")
