"""Analysis pieces: a long source's finished clips leave the analysis pass ahead of its record and commit with it, or not at all."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pytest
import yaml

from curate import synth
from curate.config import PipelineConfig
from curate.output.pieces import Pieces
from curate.output.rows import RowMaker
from curate.output.writer import ShardWriter, WriterSpec
from curate.records import DONE, OPEN, PARTS, STREAMED, is_piece, piece
from curate.run import run_pipeline
from curate.stages.analyse import AnalyseStage
from curate.stages.filter import FilterStage
from curate.validate import validate
from tests.pipeline_helpers import assert_same_output, assert_same_rows, ledger_rows, read_table

KINDS = ("pan_left", "static", "moving", "zoom_in", "tilt_up", "pan_right")
BASE = {"clips": {"min_s": 1.0, "max_s": 2.0}, "limits": {"video_timeout_s": 120}, "output": {"shard_size_mb": 64.0},
        "dedup": {"enabled": False}}
TINY = 1e-6  # resources: every finished clip leaves as a piece of its own


def _config(analyse_mb: float | None = None, encode_mb: float | None = None) -> PipelineConfig:
    resources = {k: {"piece_mb": v} for k, v in (("analyse", analyse_mb), ("encode", encode_mb)) if v is not None}
    return PipelineConfig.model_validate({**BASE, "resources": resources})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'long' source of twelve shots and a short one."""
    root = tmp_path_factory.mktemp("analysis-pieces") / "in"
    root.mkdir()
    synth.make_video(root / "long.mp4", [(45, KINDS[i % len(KINDS)]) for i in range(12)], size=(192, 144), seed=1)
    synth.make_video(root / "short.mp4", [(60, "pan_left"), (60, "moving")], size=(192, 144), seed=2)
    return root


@pytest.fixture(scope="module")
def reference(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run where no analysis piece leaves (a bound no source reaches)."""
    out = tmp_path_factory.mktemp("analysis-ref") / "out"
    run_pipeline(_config(analyse_mb=1e6), [str(inputs)], str(out), runner="local")
    return out


def _probed(path: Path) -> dict:
    from curate.stages.probe import ProbeStage

    return ProbeStage().process_video({"uri": str(path), "video_id": path.stem})


def test_a_long_source_sends_its_finished_clips_ahead_in_bounded_pieces(inputs: Path):
    video = _probed(inputs / "long.mp4")
    whole = AnalyseStage(clips=_config().clips).process_video(video)
    clip_bytes = max(sum(f.nbytes for f in c["_frames"]) for c in whole["clips"])
    *pieces, record = AnalyseStage(clips=_config().clips, piece_mb=2.5 * clip_bytes / 2**20).stream_video(video)
    assert len(pieces) >= 3 and all(is_piece(p) and p[OPEN] and p[PARTS] == 0 for p in pieces)
    assert all(len(p["clips"]) <= 3 for p in pieces)  # the bound (2.5 clips' frames) plus the clip that crossed it
    assert record[STREAMED] == {"analysed": len(pieces), "pieces": 0} and not is_piece(record)
    streamed = [c for p in pieces for c in p["clips"]] + record["clips"]
    assert [c["clip_id"] for c in streamed] == [c["clip_id"] for c in whole["clips"]]
    assert all(p["decoded"]["irregular"] is None and p["decoded"]["fps"] == pytest.approx(25.0) for p in pieces)
    assert [c["fps"] for c in streamed] == pytest.approx([c["fps"] for c in whole["clips"]])
    assert {k: record[k] for k in ("shots", "transitions", "decoded")} == {k: whole[k] for k in ("shots", "transitions", "decoded")}


def test_a_short_source_is_one_record_as_before(inputs: Path):
    (record,) = AnalyseStage(clips=_config().clips).stream_video(_probed(inputs / "short.mp4"))  # the default bound
    assert STREAMED not in record and len(record["clips"]) >= 2


def test_analysis_pieces_commit_the_same_rows_andledger_rows(inputs: Path, reference: Path, tmp_path: Path):
    out = tmp_path / "out"
    summary = run_pipeline(_config(analyse_mb=TINY), [str(inputs)], str(out), runner="local")
    assert_same_output(out, reference)
    assert summary.accepted == len(read_table(reference, "clips")) and summary.status == {DONE: 2}
    # every clip of the long source left on its own: one clips/ file per accepted clip of it, the short one's in one
    long_id = next(r["video_id"] for r in ledger_rows(out) if r["num_clips"] > 5)
    files = [pads.dataset(str(p), format="parquet").to_table(columns=["video_id"]) for p in (out / "clips").glob("*.parquet")]
    assert sum(1 for t in files if long_id in t.column("video_id").to_pylist()) == len(
        [v for v in read_table(out, "clips")["video_id"] if v == long_id])


def test_encode_splits_analysis_pieces_into_byte_pieces(inputs: Path, reference: Path, tmp_path: Path):
    out = tmp_path / "out"
    run_pipeline(_config(analyse_mb=2 * TINY, encode_mb=TINY), [str(inputs)], str(out), runner="local")
    assert_same_output(out, reference)


def test_ray_runner_streams_analysis_pieces_the_same_rows(inputs: Path, reference: Path, tmp_path: Path, ray_session):
    out = tmp_path / "out"
    run_pipeline(_config(analyse_mb=TINY, encode_mb=TINY), [str(inputs)], str(out), runner="ray")
    assert_same_output(out, reference)


def _spec(root: Path) -> WriterSpec:
    return WriterSpec(root=str(root), tag="t", rows=RowMaker("r", "h", {}), target_bytes=1 << 30, row_group_rows=100)


def test_the_ledger_row_waits_for_every_analysis_piece_and_the_byte_pieces_split_off_it(reference: Path, tmp_path: Path):
    (tmp_path / "clips").mkdir()
    rows = [r for r in pads.dataset(str(reference / "clips"), format="parquet").to_table().to_pylist()]
    vid = max({r["video_id"] for r in rows}, key=lambda v: sum(r["video_id"] == v for r in rows))
    rows = [r for r in rows if r["video_id"] == vid]
    video = {"video_id": vid, "uri": rows[0]["source_uri"], "size_bytes": 1, "status": DONE, "timings": {"analyse": 1.0}}
    writer = ShardWriter(_spec(tmp_path))
    # the record came first (Ray: another writer may hold its pieces); its own clips become a piece
    outcomes, _, (own,) = writer.add([dict(video, clips=rows[2:], **{STREAMED: {"analysed": 2, "pieces": 0}})])
    staged = writer.flush()
    assert staged.files == [] and staged.pieces == {vid: {"analysed": 2, "pieces": 1}}  # its rows wait with its pieces
    pieces = Pieces()
    pieces.add(own)
    pieces.hold(staged)
    assert pieces.settle(outcomes) == [] and pieces.ready() == []
    # two analysis pieces, closed by encode: the second had one byte piece split off it, which comes first
    first = dict(piece(video, rows[:1]), **{PARTS: 0, "timings": {"filter": 0.5}})
    split_off = piece(video, rows[1:2])
    second = dict(piece(video, []), **{PARTS: 1, "timings": {"filter": 0.5}})
    for p in (first, split_off):
        pieces.add(writer.add([p])[2][0])
        assert pieces.settle([]) == [] and pieces.ready() == [], "a commit went ahead of an analysis piece"
    pieces.add(writer.add([second])[2][0])
    (done,) = pieces.settle([])
    (ready,) = pieces.ready()
    (row,) = ready.ledger_rows
    assert row["num_clips"] == row["num_accepted"] == done.clips == len(rows) and len(ready.files) == 3
    assert json.loads(row["timings"]) == {"analyse": 1.0, "filter": 1.0}


def test_a_piece_that_fails_fails_its_video_with_none_of_its_rows(inputs: Path, reference: Path, tmp_path: Path, monkeypatch):
    """A stage fails on the long source's third piece: that video commits as failed with no clip; a rerun then stores it once."""
    seen: list[str] = []
    real = FilterStage.process_video

    def flaky(self, video):
        if is_piece(video) and video["uri"].endswith("long.mp4"):
            seen.append(video["video_id"])
            if len(seen) == 3:
                raise RuntimeError("broken piece")
        return real(self, video)

    monkeypatch.setattr(FilterStage, "process_video", flaky)
    out = tmp_path / "out"
    summary = run_pipeline(_config(analyse_mb=TINY), [str(inputs)], str(out), runner="local")
    assert summary.status == {DONE: 1, "failed": 1} and len(seen) > 3
    ledger = {r["video_id"]: r for r in pads.dataset(str(out / "_ledger"), format="parquet").to_table().to_pylist()}
    failed = ledger[seen[0]]
    assert failed["status"] == "failed" and failed["reason_key"] == "filter: RuntimeError" and failed["num_clips"] == 0
    for table in ("clips", "review", "rejected"):
        assert seen[0] not in set(read_table(out, table).get("video_id", pd.Series([])))
    assert not list(out.rglob(".w-*"))
    monkeypatch.setattr(FilterStage, "process_video", real)
    run_pipeline(_config(analyse_mb=TINY), [str(inputs)], str(out), runner="local")  # retries the failed video
    for table in ("clips", "review", "rejected"):
        assert_same_rows(read_table(out, table), read_table(reference, table))


def test_a_video_that_fails_after_its_pieces_left_commits_none_of_them(inputs: Path, tmp_path: Path, monkeypatch):
    real = FilterStage.process_video

    def fails_on_record(self, video):
        if not is_piece(video) and video["uri"].endswith("long.mp4"):
            raise RuntimeError("broken record")
        return real(self, video)

    monkeypatch.setattr(FilterStage, "process_video", fails_on_record)
    out = tmp_path / "out"
    summary = run_pipeline(_config(analyse_mb=TINY), [str(inputs)], str(out), runner="local")
    assert summary.status == {DONE: 1, "failed": 1}
    videos = {v for t in ("clips", "review", "rejected") for v in read_table(out, t).get("video_id", pd.Series([]))}
    ledger = pads.dataset(str(out / "_ledger"), format="parquet").to_table().to_pylist()
    failed = next(r for r in ledger if r["status"] == "failed")
    assert failed["reason_key"] == "filter: RuntimeError" and failed["video_id"] not in videos and failed["num_clips"] == 0
    assert not list(out.rglob(".w-*"))


@pytest.mark.slow
def test_killed_while_analysis_pieces_are_staged_the_rerun_stores_each_clip_once(inputs: Path, reference: Path, tmp_path: Path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({**BASE, "resources": {"analyse": {"piece_mb": TINY}}}))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "curate", "run", str(pipeline), "--input", str(inputs), "--output", str(out), "--runner", "local"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list((out / "clips").glob(".w-*")):
        time.sleep(0.005)  # an analysis piece is staged: its video's ledger row is not committed yet
    assert proc.poll() is None, "the run finished before a piece was staged"
    proc.kill()
    proc.wait(timeout=60)
    assert subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600).returncode == 0
    assert_same_output(out, reference)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")
def test_pieces_before_a_timestamp_reset_are_cut_by_seek_those_after_by_index(tmp_path: Path):
    """Each piece carries the timeline's verdict when it left; the clips stored either way are frame-exact and the same."""
    src = tmp_path / "in"
    src.mkdir()
    parts = []
    for k in range(2):
        mp4, ts = tmp_path / f"{k}.mp4", tmp_path / f"{k}.ts"
        synth.make_video(mp4, [(45, KINDS[(3 * k + i) % len(KINDS)]) for i in range(3)], size=(192, 144), seed=5 + k)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c", "copy", "-f", "mpegts", str(ts)], check=True,
                       stdin=subprocess.DEVNULL)
        parts.append(ts.read_bytes())
    spliced = src / "spliced.ts"
    spliced.write_bytes(b"".join(parts))  # timestamps reset where the second file starts
    *pieces, record = AnalyseStage(clips=_config().clips, piece_mb=TINY).stream_video(_probed(spliced))
    verdicts = [p["decoded"]["irregular"] for p in pieces]
    assert verdicts[0] is None and verdicts[-1] is not None and record["decoded"]["irregular"] is not None
    ref, out = tmp_path / "ref", tmp_path / "out"
    run_pipeline(_config(analyse_mb=1e6), [str(src)], str(ref), runner="local")
    run_pipeline(_config(analyse_mb=TINY), [str(src)], str(out), runner="local")
    assert_same_output(out, ref)
    assert validate(str(out), decode=True) == []
