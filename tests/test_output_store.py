"""OutputStore: shards, ledger, manifest, lock and what readers see.

``fake_video`` / ``small_config`` are shared with the other output tests
(resume, validate, inspect): fake records with random scores and a few KB
of fake bytes, no real video needed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from curate.config import OutputConfig, PipelineConfig
from curate.output import LockedError, OutputStore
from curate.output.legacy import failure_key, threshold_key
from curate.output.shards import chunks, parse_part
from curate.records import clip_id, reason
from curate.schema import schema_versions
from curate.validate import validate

REPO = Path(__file__).resolve().parents[1]


def fake_video(i: int, status: str = "done", n_clips: int = 3, video_bytes: int = 2000) -> dict[str, Any]:
    """Video record ``i``: its clips (ids, scores, bytes) depend only on ``i``; ~1 in 3 clips is rejected."""
    rng = random.Random(i)
    vid = f"vid{i:05d}"
    clips = []
    for k in range(n_clips):
        s, e = 48 * k, 48 * k + 48
        motion = rng.uniform(0, 2)
        clips.append(dict(
            clip_id=clip_id(vid, "split", s, e), shot_index=k, window_index=0, start_frame=s, end_frame=e,
            num_frames=48, start_s=s / 24, end_s=e / 24, duration_s=2.0, fps=24.0, width=320, height=180,
            source_fps=24.0, source_width=320, source_height=180, source_rotation=0, source_codec="h264",
            source_pix_fmt="yuv420p", video=rng.randbytes(video_bytes), video_format="mp4",
            motion_score=motion, camera_motion="static", camera_pan=rng.uniform(-1, 1), camera_tilt=0.0,
            camera_zoom=0.0, sharpness=rng.uniform(0, 100), brightness=rng.random(), contrast=rng.random() / 4,
            black_fraction=0.0, frozen_fraction=rng.random() / 10, phash=f"{rng.getrandbits(64):016x}",
            thumbnail=rng.randbytes(200), _frames=[object()],
            reject_reasons=[reason("min_motion", f"motion_score {motion:.2f} < min_motion 0.15")] if rng.random() < 0.33 else [],
        ))
    record = dict(
        uri=f"/data/v{i}.mp4", video_id=vid, size_bytes=10_000 + i, status=status, reason=None, clips=clips,
        probe=dict(container="mov,mp4", codec="h264", width=320, height=180, fps=25.0, duration_s=11.0),
        decoded=dict(num_frames=240, duration_s=10.0, fps=24.0),
        timings={"probe": 0.01, "analyse": 0.5}, input_meta={"split": "train"},
    )
    if status == "failed":
        record.update(reason_key="analyse: VideoOpenFailure", reason=f"analyse: VideoOpenFailure: cannot open /data/v{i}.mp4")
    elif status == "rejected":
        record.update(reason_key="min_duration_s", reason="duration_s 0.5 < min_duration_s 1", clips=[])
    return record


def status_of(i: int) -> str:
    """A fixed mix: every 7th video rejected, every 5th failed, the rest done."""
    return "rejected" if i % 7 == 6 else "failed" if i % 5 == 4 else "done"


def small_config(shard_mb: float = 0.02, row_group_rows: int = 4) -> PipelineConfig:
    return PipelineConfig(output=OutputConfig(shard_size_mb=shard_mb, row_group_rows=row_group_rows))


def expected_ids(indices: range | list[int], table: str = "clips") -> set[str]:
    """Clip ids that ``fake_video(i, "done")`` puts in ``table`` for the given videos."""
    want_rejected = table == "rejected"
    return {c["clip_id"] for i in indices for c in fake_video(i)["clips"] if bool(c["reject_reasons"]) == want_rejected}


def write(out: str, n: int = 20, config: PipelineConfig | None = None, statuses: Any = status_of) -> None:
    with OutputStore.open(out, config or small_config()) as store:
        for i in range(n):
            store.add(fake_video(i, statuses(i)))


def done(n: int) -> list[int]:
    return [i for i in range(n) if status_of(i) == "done"]


def test_readers_see_every_committed_clip(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    write(out)
    clips, rejected = expected_ids(done(20)), expected_ids(done(20), "rejected")
    assert set(pd.read_parquet(f"{out}/clips")["clip_id"]) == clips
    assert ds.dataset(f"{out}/rejected").count_rows() == len(rejected)
    rows = duckdb.sql(f"SELECT count(*), count(DISTINCT clip_id) FROM '{out}/clips/*.parquet'").fetchall()[0]
    assert rows == (len(clips), len(clips))
    for table in ("clips", "rejected"):
        assert all(p.suffix == ".parquet" and not p.name.startswith(".") for p in (tmp_path / "out" / table).iterdir())
    assert validate(out) == []


def test_rows_follow_the_schemas(tmp_path: Path) -> None:
    out, cfg = tmp_path / "out", small_config(row_group_rows=2)
    write(str(out), config=cfg)
    for f in (out / "clips").glob("*.parquet"):
        md = pq.read_metadata(f)
        assert md.row_group(0).column(0).compression == "ZSTD"
        assert all(md.row_group(g).num_rows <= 2 for g in range(md.num_row_groups))
        assert md.schema.to_arrow_schema().metadata[b"curate.schema"] == b"clip"
    clips = pd.read_parquet(out / "clips")
    assert "_frames" not in clips and clips["config_hash"].eq(cfg.config_hash()).all()
    assert json.loads(clips["input_meta"].iloc[0]) == {"split": "train"}
    rejected = pd.read_parquet(out / "rejected")
    assert "video" not in rejected and rejected["reject_reasons"].map(len).min() == 1
    videos = pd.read_parquet(out / "videos.parquet").set_index("video_id")
    assert len(videos) == 20 and videos.loc["vid00004", "num_clips"] == 0  # failed: its clips are not kept
    v0 = videos.loc["vid00000"]
    assert (v0.num_clips, v0.duration_s, v0.fps, v0.width, v0.codec) == (3, 10.0, 24.0, 320, "h264")  # decoded over probe
    assert json.loads(v0.timings) == {"analyse": 0.5, "probe": 0.01}


def test_shards_rotate_and_a_video_stays_in_one_commit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with OutputStore.open(str(out), small_config(shard_mb=0.02)) as store:
        for i in range(30):
            store.add(fake_video(i))
        store.add(fake_video(99, n_clips=60))  # ~6x the shard target
    files = sorted((out / "clips").glob("*.parquet"))
    parts = {parse_part(f.name)[0] for f in files}
    assert len(parts) >= 5 and len(files) > len(parts)  # rotated, and the big video spread over several files
    by_file = pd.concat([pd.read_parquet(f, columns=["video_id"]).assign(part=parse_part(f.name)[0])
                         for d in ("clips", "rejected") for f in (out / d).glob("*.parquet")])
    assert len(by_file) == 30 * 3 + 60 and by_file.groupby("video_id")["part"].nunique().max() == 1
    ledger = pd.read_parquet(out / "videos.parquet").set_index("video_id")["part"]
    assert (by_file.set_index("video_id")["part"] == ledger.reindex(by_file["video_id"]).values).all()


def test_manifest_describes_the_committed_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = small_config()
    write(str(out), config=cfg)
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"] == cfg.model_dump(mode="json") and m["config_hash"] == cfg.config_hash()
    assert m["schema_versions"] == schema_versions() and m["curate_version"]
    assert [r["status"] for r in m["runs"]] == ["completed"] and m["runs"][0]["run_id"] == m["run_id"]
    f = m["funnel"]
    assert f["videos"] == {"inputs": 20, "done": 14, "rejected": 2, "failed": 4}
    assert f["videos_rejected"] == {"min_duration_s": 2} and f["videos_failed"] == {"analyse: VideoOpenFailure": 4}
    n_acc, n_rej = len(expected_ids(done(20))), len(expected_ids(done(20), "rejected"))
    assert f["clips"] == {"produced": n_acc + n_rej, "accepted": n_acc, "rejected": n_rej, "flagged": 0}
    assert f["clips_rejected"] == {"min_motion": n_rej} and all(f["checks"].values())
    assert m["timings"]["analyse"] == {"total_s": 10.0, "videos": 20, "mean_s": 0.5}
    for table, entries in m["shards"].items():
        assert sum(pq.read_metadata(out / e["path"]).num_rows for e in entries) == m["rows"][table]
    assert m["videos"] == "videos.parquet" and m["created"] <= m["updated"]


def test_resume_skips_finished_and_retries_failed(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    write(out)
    with OutputStore.open(out, small_config()) as store:
        assert store.finished_ids() == {f"vid{i:05d}" for i in range(20) if status_of(i) != "failed"}
        assert store.status("vid00004") == "failed" and store.status("nope") is None
        for i in range(25):
            if f"vid{i:05d}" not in store.finished_ids():
                store.add(fake_video(i))
    m = json.loads(Path(out, "manifest.json").read_text())
    assert m["funnel"]["videos"] == {"inputs": 25, "done": 23, "rejected": 2, "failed": 0}
    assert [r["status"] for r in m["runs"]] == ["completed", "completed"]
    videos = pd.read_parquet(Path(out, "videos.parquet")).set_index("video_id")
    assert videos.loc["vid00004", "status"] == "done" and videos.loc["vid00004", "run_id"] == m["runs"][1]["run_id"]
    ledger = sorted(p.name for p in Path(out, "_ledger").iterdir())
    assert len({name[-16:] for name in ledger}) == 2  # each run's tag
    assert ledger == sorted(ledger, key=lambda n: int(n.split("-")[1]))  # seq continued
    assert set(pd.read_parquet(Path(out, "clips"))["clip_id"]) == expected_ids(range(25)) - expected_ids([6, 13])
    assert validate(out) == []


def test_second_writer_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    first = OutputStore.open(out, small_config(), run_id="run-A")
    with pytest.raises(LockedError, match=rf"is in use by run run-A \(pid {os.getpid()} on host .+\) since "):
        OutputStore.open(out, small_config(), run_id="run-B")
    first.close()
    OutputStore.open(out, small_config(), run_id="run-B").close()


def test_lock_dies_with_a_killed_holder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = ("import sys, time; from curate.config import PipelineConfig; from curate.output import OutputStore\n"
            f"s = OutputStore.open({str(out)!r}, PipelineConfig(), run_id='holder'); print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    with pytest.raises(LockedError, match="run holder"):
        OutputStore.open(str(out), PipelineConfig())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    OutputStore.open(str(out), PipelineConfig()).close()


def test_object_store_output(tmp_path: Path) -> None:
    out = f"memory://curate-test-{time.monotonic_ns()}/out"
    write(out)
    fs = fsspec.filesystem("memory")
    root = out.removeprefix("memory://")
    assert not fs.exists(f"{root}/.lock") and validate(out) == []
    with fs.open(f"{root}/clips/{fs.ls(f'{root}/clips', detail=False)[0].rsplit('/', 1)[-1]}", "rb") as f:
        assert pq.read_metadata(f).num_rows > 0
    with OutputStore.open(out, small_config(), run_id="A") as store:
        assert len(store.finished_ids()) == 16
        with pytest.raises(LockedError, match=r"in use by run A \(pid"):
            OutputStore.open(out, small_config())


def test_stale_object_store_lease_is_taken_over() -> None:
    out = f"memory://curate-test-{time.monotonic_ns()}/out"
    fs = fsspec.filesystem("memory")
    lease = {"run_id": "old", "pid": 1, "host": "gone", "since": "then", "token": "x", "heartbeat": time.time() - 3600}
    fs.pipe_file(f"{out.removeprefix('memory://')}/.lock", json.dumps(lease).encode())
    OutputStore.open(out, small_config()).close()


def test_add_refuses_unfinished_or_malformed_records(tmp_path: Path) -> None:
    with OutputStore.open(str(tmp_path / "out"), small_config()) as store:
        with pytest.raises(ValueError, match="status 'pending'"):
            store.add(fake_video(0, "pending"))
        bad = fake_video(1)
        del bad["clips"][0]["sharpness"]
        with pytest.raises(ValueError, match="vid00001.*sharpness"):
            store.add(bad)
        store.add(fake_video(2))
        store.add(fake_video(2))  # a duplicate input: ignored
    assert pd.read_parquet(tmp_path / "out" / "videos.parquet")["video_id"].tolist() == ["vid00002"]


def test_exception_in_the_with_block_commits_and_records_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), OutputStore.open(str(out), small_config(shard_mb=100)) as store:
        store.add(fake_video(0))
        raise RuntimeError("driver bug")
    m = json.loads((out / "manifest.json").read_text())
    assert m["runs"][-1]["status"] == "failed" and m["funnel"]["videos"]["done"] == 1


def test_huggingface_datasets_reads_the_shards(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out"
    write(str(out))
    data = datasets.load_dataset("parquet", data_files=str(out / "clips" / "*.parquet"), split="train",
                                 cache_dir=str(tmp_path / "hf"))
    assert len(data) == len(expected_ids(done(20))) and "motion_score" in data.column_names


def test_chunks_split_near_the_target() -> None:
    assert list(chunks([5, 5, 5], 100)) == [(0, 3)]
    assert list(chunks([10] * 10, 25)) == [(0, 3), (3, 2), (5, 3), (8, 2)]
    assert list(chunks([], 10)) == [] and list(chunks([0, 0], 10)) == [(0, 2)]


# The keys the v2 reader (curate.output.legacy) derives from v2 sentences.
@pytest.mark.parametrize("reason,key", [
    ("motion_score 0.02 < min_motion 0.15", "min_motion"),
    ("black_fraction 0.7 > max_black_fraction 0.5", "max_black_fraction"),
    ("caption missing for require_caption", "require_caption"),
    (None, "unspecified"),
])
def test_threshold_keys(reason: str | None, key: str) -> None:
    assert threshold_key(reason) == key


@pytest.mark.parametrize("reason,key", [
    ("analyse: VideoOpenFailure: cannot open /x/y.mp4", "analyse: VideoOpenFailure"),
    ("analyse: timeout: no result within 600s (limits.video_timeout_s)", "analyse: timeout"),
    ("decode: worker process died (exit code -11)", "decode: worker process died"),
    ("discover: cannot read input: [Errno 2] No such file", "discover: cannot read input"),
])
def test_failure_keys(reason: str, key: str) -> None:
    assert failure_key(reason) == key
