"""End to end: both runners give the same rows; bad inputs each end with a reason."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from curate.config import PipelineConfig
from curate.media.decode import count_decode_passes
from curate.run import run_pipeline
from curate.validate import validate
from tests.pipeline_helpers import assert_same_rows, make_inputs, read_table
from curate.synth import make_audio_only, make_video, truncate_copy, write_garbage

TIMEOUT_S = 60.0
HANG_TIMEOUT_S = 3.0


def _config(**over) -> PipelineConfig:
    base = {"limits": {"video_timeout_s": TIMEOUT_S}, "clips": {"min_s": 1.0, "max_s": 4.0}, "output": {"shard_size_mb": 0.05}}
    base.update(over)
    return PipelineConfig.model_validate(base)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Good videos plus one of every kind of bad input."""
    root = tmp_path_factory.mktemp("corpus")
    good = make_inputs(root, 3)
    (root / "zero.mp4").write_bytes(b"")
    write_garbage(root / "garbage.mp4")
    (root / "notes.mp4").write_text("this is not a video\n" * 50)
    truncate_copy(good[0], root / "truncated.mp4", 0.3)
    make_audio_only(root / "audio_only.mp4")
    make_video(root / "short.mp4", [(10, "moving")], size=(192, 144))
    make_video(root / "tiny.mp4", [(40, "moving")], size=(32, 32))
    return root


EXPECTED = {
    "zero.mp4": "failed",
    "garbage.mp4": "failed",
    "notes.mp4": "failed",
    "audio_only.mp4": "rejected",
    "short.mp4": "rejected",
    "tiny.mp4": "rejected",
    "v0.mp4": "done",
    "v1.mp4": "done",
    "v2.mp4": "done",
}


def _run(corpus: Path, out: Path, runner: str) -> tuple[float, pd.DataFrame]:
    t0 = time.monotonic()
    summary = run_pipeline(_config(), [str(corpus)], str(out), runner=runner)
    elapsed = time.monotonic() - t0
    assert summary.inputs == len(EXPECTED) + 1
    return elapsed, pd.read_parquet(out / "videos.parquet")


@pytest.fixture(scope="module")
def local_run(corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    _run(corpus, out, "local")
    return out


def test_bad_inputs_each_get_a_row_with_a_reason(local_run: Path):
    videos = pd.read_parquet(local_run / "videos.parquet")
    by_name = {Path(u).name: r for u, r in zip(videos["uri"], videos.to_dict("records"))}
    for name, status in EXPECTED.items():
        assert by_name[name]["status"] == status, (name, by_name[name]["reason"])
        if status != "done":
            assert by_name[name]["reason"], name
    assert by_name["truncated.mp4"]["status"] in ("done", "failed", "rejected")
    assert "no video stream" in by_name["audio_only.mp4"]["reason"]
    assert "short" in by_name["short.mp4"]["reason"]
    assert "small" in by_name["tiny.mp4"]["reason"]
    assert validate(str(local_run)) == []


def test_funnel_adds_up(local_run: Path):
    manifest = json.loads((local_run / "manifest.json").read_text())
    f = manifest["funnel"]
    assert f["videos"]["inputs"] == len(EXPECTED) + 1
    clips = read_table(local_run, "clips")
    rejected = read_table(local_run, "rejected")
    assert len(clips) > 0 and len(rejected) > 0, "the static shots must be rejected, the moving ones kept"
    assert set(clips["clip_id"]).isdisjoint(rejected["clip_id"])
    assert all(len(r) for r in rejected["reject_reasons"])


def test_clips_are_playable_and_frame_exact(local_run: Path):
    import av

    clips = read_table(local_run, "clips")
    for row in clips.itertuples():
        import io

        with av.open(io.BytesIO(row.video)) as c:
            n = sum(1 for _ in c.decode(video=0))
        assert n == row.num_frames == row.end_frame - row.start_frame


def test_ray_runner_gives_the_same_rows(corpus: Path, local_run: Path, tmp_path: Path, ray_session):
    elapsed, videos = _run(corpus, tmp_path / "ray", "ray")
    assert elapsed < 120
    for table in ("clips", "rejected"):
        assert_same_rows(read_table(local_run, table), read_table(tmp_path / "ray", table))
    local = pd.read_parquet(local_run / "videos.parquet").sort_values("video_id")
    ray = videos.sort_values("video_id")
    assert ray["status"].tolist() == local["status"].tolist()
    for column in ("shots", "transitions"):  # the shot list: same from both runners
        assert [None if x is None else x.tolist() for x in ray[column]] == [None if x is None else x.tolist() for x in local[column]]


def test_videos_hold_their_shot_list(local_run: Path):
    """Every analysed video (done, or rejected as too short after decoding) has its shots and transitions."""
    import pyarrow.parquet as pq

    from curate.inspect import summarize

    rows = {Path(r["uri"]).name: r for r in pq.read_table(local_run / "videos.parquet").to_pylist()}
    for name in ("v0.mp4", "v1.mp4", "v2.mp4", "short.mp4"):
        r = rows[name]
        shots, transitions = r["shots"], r["transitions"]
        assert shots and shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == r["num_frames"], name
        for a, b in zip(shots, shots[1:]):  # in order, apart only by a gradual transition's frames
            assert a["end_frame"] <= b["start_frame"], name
        assert all(t["kind"] in ("cut", "gradual", "flash_suppressed") and 0 <= t["score"] <= 1 for t in transitions), name
    # make_inputs: three 60-frame shots joined by hard cuts, or two
    assert [(s["start_frame"], s["end_frame"]) for s in rows["v0.mp4"]["shots"]] == [(0, 60), (60, 120), (120, 180)]
    assert [(t["start_frame"], t["kind"]) for t in rows["v0.mp4"]["transitions"]] == [(60, "cut"), (120, "cut")]
    assert rows["short.mp4"]["shots"] == [{"start_frame": 0, "end_frame": 10}] and rows["short.mp4"]["transitions"] == []
    for name in ("zero.mp4", "garbage.mp4", "notes.mp4"):  # never analysed
        assert rows[name]["shots"] is None and rows[name]["transitions"] is None, name
    shot_list = summarize(str(local_run))["shot_list"]
    assert shot_list["shots"] == sum(len(r["shots"] or []) for r in rows.values()) and shot_list["cut"] >= 5


@pytest.mark.parametrize("runner", ["local", "ray"])
def test_never_ending_input_fails_at_its_time_limit(tmp_path: Path, runner: str, request):
    if runner == "ray":
        request.getfixturevalue("ray_session")
    fifo = tmp_path / "never_ending.mp4"
    os.mkfifo(fifo)  # a reader blocks forever inside native open(): nothing ever writes
    t0 = time.monotonic()
    run_pipeline(_config(limits={"video_timeout_s": HANG_TIMEOUT_S}), [str(fifo)], str(tmp_path / "out"), runner=runner)
    elapsed = time.monotonic() - t0
    (row,) = pd.read_parquet(tmp_path / "out" / "videos.parquet").to_dict("records")
    assert row["status"] == "failed" and "timeout" in row["reason"]
    assert elapsed < HANG_TIMEOUT_S + 30, "the hang must end at its limit plus a small margin"


def test_rerun_skips_finished_and_keeps_ids(corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    first = run_pipeline(_config(), [str(corpus / "v0.mp4"), str(corpus / "v1.mp4")], str(out), runner="local")
    again = run_pipeline(_config(), [str(corpus / "v0.mp4"), str(corpus / "v1.mp4")], str(out), runner="local")
    assert first.processed == 2 and again.processed == 0 and again.skipped == 2
    # thresholds do not change clip ids
    other = run_pipeline(_config(filter={"min_motion": 5.0}), [str(corpus / "v0.mp4")], str(tmp_path / "o2"), runner="local")
    assert other.processed == 1
    ids = set(read_table(out, "clips")["clip_id"]) | set(read_table(out, "rejected")["clip_id"])
    ids2 = set(read_table(tmp_path / "o2", "rejected")["clip_id"]) | set(read_table(tmp_path / "o2", "clips")["clip_id"])
    assert ids2 and ids2 <= ids


def test_analysis_decodes_each_source_once(corpus: Path, tmp_path: Path):
    from curate.pipeline import build_stages

    cfg = _config(limits={"video_timeout_s": 600})
    probe, analyse = build_stages(cfg)[:2]
    probe.timeout_s = analyse.timeout_s = None  # in-process, so the counter sees the decode
    from curate.discover import discover

    (video,) = discover([str(corpus / "v2.mp4")])
    with count_decode_passes() as passes:
        out = analyse.process(probe.process([video]))[0]
    assert out["clips"], out.get("reason")
    assert passes[video["uri"]] == 1


def test_local_runner_writes_an_object_store_output(corpus: Path, local_run: Path):
    """The work list and the shards live on the object store too (``memory://`` here, in-process)."""
    from curate.output.shards import Location
    from curate.output.shards import read_table as read_shard

    out = f"memory://curate-e2e-{time.monotonic_ns()}/out"
    run_pipeline(_config(), [str(corpus / "v0.mp4")], out, runner="local")
    loc = Location.of(out)
    ids = [i for n in loc.names("clips") for i in read_shard(loc, f"clips/{n}", ["clip_id"])["clip_id"].to_pylist()]
    assert ids and set(ids) <= set(read_table(local_run, "clips")["clip_id"])
    assert not loc.fs.exists(loc.path("_work")) and validate(out) == []
