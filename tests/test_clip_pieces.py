"""Clip pieces: a long video's encoded clips go to the writer ahead of its record and commit with its ledger row."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as pads
import pytest
import yaml

from curate.config import PipelineConfig
from curate.output.rows import RowMaker
from curate.output.pieces import Pieces
from curate.output.writer import ShardWriter, WriterSpec
from curate.records import DONE, FAILED, STREAMED, piece
from curate.run import run_pipeline
from tests.pipeline_helpers import assert_same_output, make_inputs, read_table

BASE = {"clips": {"min_s": 1.0, "max_s": 2.0}, "limits": {"video_timeout_s": 60}, "output": {"shard_size_mb": 64.0}}
EVERY_CLIP = {"resources": {"encode": {"piece_mb": 1e-6}}}  # every encoded clip is a piece of its own


def _config(**over: object) -> PipelineConfig:
    return PipelineConfig.model_validate({**BASE, **over})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pieces") / "in"
    make_inputs(root, 2)
    return root


@pytest.fixture(scope="module")
def reference(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pieces-ref") / "out"
    run_pipeline(_config(), [str(inputs)], str(out), runner="local")
    return out


def test_streamed_clips_commit_the_same_rows_and_counts(inputs: Path, reference: Path, tmp_path: Path):
    out = tmp_path / "out"
    summary = run_pipeline(_config(**EVERY_CLIP), [str(inputs)], str(out), runner="local")
    assert_same_output(out, reference)
    assert summary.accepted == len(read_table(reference, "clips")) > 1
    # one file per piece: the clips were stored one at a time, not as one video's object
    assert len(list((out / "clips").glob("*.parquet"))) == summary.accepted


def test_ray_runner_streams_the_same_rows(inputs: Path, reference: Path, tmp_path: Path, ray_session):
    out = tmp_path / "out"
    summary = run_pipeline(_config(**EVERY_CLIP), [str(inputs)], str(out), runner="ray")
    assert_same_output(out, reference)
    smallest_clip = min(len(v) for v in read_table(out, "clips")["video"])
    assert 0 < summary.driver_bytes < smallest_clip * summary.accepted  # metadata only


def _spec(root: Path) -> WriterSpec:
    return WriterSpec(root=str(root), tag="t", rows=RowMaker("r", "h", {}), target_bytes=1 << 30, row_group_rows=100)


def _record(reference: Path) -> tuple[dict, list[dict]]:
    """A finished video record and its stored clip rows, from the reference output."""
    clips = pads.dataset(str(reference / "clips"), format="parquet").to_table().to_pylist()
    vid = clips[0]["video_id"]
    rows = [r for r in clips if r["video_id"] == vid]
    assert len(rows) > 1
    ledger = next(r for r in pads.dataset(str(reference / "_ledger"), format="parquet").to_table().to_pylist() if r["video_id"] == vid)
    video = {k: ledger[k] for k in ("video_id", "uri", "size_bytes")} | {"status": DONE, "timings": {}, "clips": []}
    return video, rows


def test_a_commit_waits_for_its_pieces_and_drops_those_of_a_failed_video(reference: Path, tmp_path: Path):
    (tmp_path / "clips").mkdir()
    video, rows = _record(reference)
    writer = ShardWriter(_spec(tmp_path))
    _, _, (first,) = writer.add([piece(video, rows[:1])])
    done = dict(video, **{STREAMED: {"pieces": 2}})
    writer.add([done])
    staged = writer.flush()
    assert staged.pieces == {video["video_id"]: {"pieces": 2}} and staged.ledger_rows[0]["num_accepted"] == 0
    pieces = Pieces()
    pieces.add(first)
    pieces.hold(staged)
    assert pieces.ready() == [] and pieces.waiting == 1  # the second piece is not in yet
    _, _, (second,) = writer.add([piece(video, rows[1:])])
    pieces.add(second)
    (ready,) = pieces.ready()
    assert [f.temp for f in ready.files] == [f.temp for f in first.files + second.files] and not pieces.waiting
    assert ready.ledger_rows[0]["num_accepted"] == ready.ledger_rows[0]["num_clips"] == len(rows)  # counted as they join

    failed = Pieces()
    failed.add(first)
    assert failed.take([dict(staged.ledger_rows[0], status=FAILED)], {}) == ([dict(staged.ledger_rows[0], status=FAILED)], [])  # dropped
    assert failed.take([staged.ledger_rows[0]], {video["video_id"]: {"pieces": 1}}) is None  # and gone


@pytest.mark.slow
def test_killed_while_pieces_are_staged_the_rerun_stores_each_clip_once(inputs: Path, reference: Path, tmp_path: Path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({**BASE, **EVERY_CLIP}))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "curate", "run", str(pipeline), "--input", str(inputs), "--output", str(out), "--runner", "local"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list((out / "clips").glob(".w-*")):
        time.sleep(0.005)  # a piece is staged: its video's ledger row is not committed yet
    assert proc.poll() is None, "the run finished before a piece was staged"
    proc.kill()
    proc.wait(timeout=60)
    assert subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600).returncode == 0
    assert_same_output(out, reference)
