"""Hostile media: every stored clip is frame-exact whatever the container, wide videos, display aspect.

The container corpus is made from real shared videos with the ffmpeg CLI:
remuxes (``-c copy``) into MPEG-TS, M2TS, MOV and MKV with negative
timestamps (frames without pts), re-encodes where the codec does not fit the
container (MPEG-2 for program streams, VP8 for WebM, MPEG-4 Part 2 for AVI),
TS files concatenated with a timestamp reset and a resolution change, and
``box.mp4`` (out-of-order pts). Every stored clip must decode to exactly its
``num_frames`` frames of the claimed span (``validate --decode``).
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from pathlib import Path

import av
import pandas as pd
import pytest
from typer.testing import CliRunner

from curate import synth
from curate.config import PipelineConfig
from curate.run import run_pipeline
from curate.validate import check_clip_bytes, validate
from tests.pipeline_helpers import read_table

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")

# Keep every clip (the point is what is stored), short clips so there are many.
KEEP_ALL = {"min_motion": 0.0, "min_sharpness": 0.0, "min_brightness": 0.0, "max_brightness": 1.0,
            "max_black_fraction": 1.0, "max_frozen_fraction": 1.0}


def _config(**over) -> PipelineConfig:
    base = {"clips": {"min_s": 1.0, "max_s": 3.0}, "filter": KEEP_ALL, "dedup": {"enabled": False},
            "limits": {"video_timeout_s": 120}}
    base.update(over)
    return PipelineConfig.model_validate(base)


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, stdin=subprocess.DEVNULL)


def container_copies(src: Path, root: Path, seconds: float | None = None) -> list[Path]:
    """``src`` in every container the decoder reads; ``seconds`` cuts each copy short."""
    stem = src.stem
    cut = ["-t", f"{seconds}"] if seconds else []
    specs = {
        f"{stem}.ts": ["-c", "copy", "-f", "mpegts"],
        f"{stem}.m2ts": ["-c", "copy", "-f", "mpegts", "-mpegts_m2ts_mode", "1"],
        f"{stem}.mov": ["-c", "copy"],
        # negative timestamps in Matroska: the first frames come out without pts
        f"{stem}_neg.mkv": ["-c", "copy", "-output_ts_offset", "-1", "-avoid_negative_ts", "disabled"],
        f"{stem}.mpg": ["-c:v", "mpeg2video", "-q:v", "4", "-f", "mpeg"],  # MPEG-PS
        f"{stem}.vob": ["-c:v", "mpeg2video", "-q:v", "4", "-f", "vob"],
        f"{stem}.webm": ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"],
        f"{stem}.avi": ["-c:v", "mpeg4", "-q:v", "4"],
    }
    out = []
    for name, args in specs.items():
        ffmpeg("-i", src, *cut, "-an", *args, root / name)
        out.append(root / name)
    return out


def spliced_ts(a: Path, b: Path, out: Path, seconds: float = 4.0) -> Path:
    """Two TS files byte-concatenated: timestamps reset mid-stream (and the size changes if theirs differ)."""
    parts = []
    for k, src in enumerate((a, b)):
        parts.append(out.parent / f"_{out.stem}{k}.ts")
        ffmpeg("-i", src, "-t", f"{seconds}", "-an", "-c", "copy", "-f", "mpegts", parts[-1])
    out.write_bytes(b"".join(p.read_bytes() for p in parts))
    for p in parts:
        p.unlink()
    return out


def resolution_change_ts(root: Path) -> Path:
    """One continuous TS timeline whose picture size changes mid-shot (192x144 -> 256x192)."""
    a, b = root / "_rc_a.mp4", root / "_rc_b.mp4"
    synth.make_video(a, [(50, "pan_left")], size=(192, 144), seed=3)
    synth.make_video(b, [(50, "pan_left")], size=(256, 192), seed=3)
    ta, tb = root / "_rc_a.ts", root / "_rc_b.ts"
    ffmpeg("-i", a, "-c", "copy", "-f", "mpegts", ta)
    ffmpeg("-i", b, "-c", "copy", "-f", "mpegts", "-output_ts_offset", "2", tb)
    out = root / "reschange.ts"
    out.write_bytes(ta.read_bytes() + tb.read_bytes())
    for p in (a, b, ta, tb):
        p.unlink()
    return out


def stored_vs_claimed(output: Path) -> list[tuple[str, int, int]]:
    """(source name, frames the stored MP4 decodes to, num_frames) per accepted clip."""
    rows = []
    for r in read_table(output, "clips").itertuples():
        with av.open(io.BytesIO(r.video)) as c:
            n = sum(1 for _ in c.decode(video=0))
        rows.append((Path(r.source_uri).name, n, r.num_frames))
    return rows


def assert_exact(output: Path, names: set[str]) -> None:
    videos = pd.read_parquet(output / "videos.parquet")
    status = {Path(u).name: (s, r) for u, s, r in zip(videos["uri"], videos["status"], videos["reason"])}
    assert {n for n in names if status[n][0] != "done"} == set(), {n: status[n] for n in names}
    counts = stored_vs_claimed(output)
    assert {n for n, _, _ in counts} == names, "every source stores clips"
    assert [c for c in counts if c[1] != c[2]] == []
    assert validate(str(output), decode=True) == []


@pytest.fixture(scope="module")
def corpus(shared_dir: Path, tmp_path_factory) -> Path:
    videos = shared_dir / "media/videos"
    root = tmp_path_factory.mktemp("containers")
    container_copies(videos / "bikes.mp4", root, seconds=6)
    spliced_ts(videos / "bikes.mp4", videos / "chaplin.mp4", root / "spliced.ts")  # reset + 640x272 -> 640x360
    resolution_change_ts(root)
    ffmpeg("-i", videos / "box.mp4", "-t", "6", "-an", "-c", "copy", "-f", "mpegts", root / "box.ts")
    shutil.copy(videos / "box.mp4", root / "box.mp4")  # out-of-order pts (FFmpeg's best_effort_timestamp uses dts)
    return root


@pytest.fixture(scope="module")
def local_out(corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "out"
    run_pipeline(_config(), [str(corpus)], str(out), runner="local")
    return out


@pytest.mark.shared
def test_every_container_stores_exactly_num_frames(corpus: Path, local_out: Path):
    assert_exact(local_out, {p.name for p in corpus.iterdir()})


@pytest.mark.shared
def test_validate_decode_cli(local_out: Path):
    from curate.cli import app

    result = CliRunner().invoke(app, ["validate", "--decode", str(local_out)])
    assert result.exit_code == 0, result.output


def test_validate_decode_reports_a_clip_that_misses_frames(tmp_path: Path):
    from curate.config import EncodeConfig
    from curate.media.decode import iter_frames
    from curate.media.encode import ClipEncoder

    path = tmp_path / "v.mp4"
    synth.make_video(path, [(30, "moving")], size=(128, 96))
    frames = list(iter_frames(str(path)))
    enc = ClipEncoder(EncodeConfig(), frames[0].frame, 0, 25.0)
    for df in frames[:20]:
        enc.add(df.frame, df.time_s)
    data = enc.finish(frames[19].end_s)
    row = {"clip_id": "c", "video": data, "video_format": "mp4", "num_frames": 20, "duration_s": frames[19].end_s,
           "fps": 25.0, "source_fps": 25.0, "width": 128, "height": 96}
    assert check_clip_bytes(row) is None
    assert "decodes to 20 frames, its row says num_frames 21" in check_clip_bytes(dict(row, num_frames=21))
    # an fps below the source's is thinning only when the run's max_fps says so (old rows had frames/duration there)
    assert "its row says num_frames 21" in check_clip_bytes(dict(row, num_frames=21, fps=0.9))
    assert "thinned: ~8" in check_clip_bytes(dict(row, fps=10.0), max_fps=10.0)
    assert "spans 0.800 s" in check_clip_bytes(dict(row, duration_s=1.0))
    assert "its row says 130x96" in check_clip_bytes(dict(row, width=130))
    assert check_clip_bytes(dict(row, video=data[: len(data) // 3])) is not None


@pytest.mark.shared
def test_ray_runner_stores_exact_clips(corpus: Path, tmp_path: Path, ray_session):
    names = ["bikes.ts", "bikes_neg.mkv", "spliced.ts", "bikes.mpg"]
    out = tmp_path / "ray"
    run_pipeline(_config(), [str(corpus / n) for n in names], str(out), runner="ray")
    assert_exact(out, set(names))


@pytest.mark.shared
def test_refilter_encodes_newly_kept_clips_exactly(corpus: Path, tmp_path: Path):
    """Refilter has no analysis record (timeline unknown): it cuts by decode index and must stay exact."""
    from curate.refilter import refilter

    names = ["bikes.ts", "bikes_neg.mkv", "box.ts"]
    out = tmp_path / "out"
    run_pipeline(_config(filter=dict(KEEP_ALL, min_motion=1e9)), [str(corpus / n) for n in names], str(out), runner="local")
    assert read_table(out, "clips").empty
    result = refilter(str(out), _config())
    assert result.record is not None and result.record["encoded"] > 0
    assert_exact(out, set(names))


@pytest.mark.shared
def test_max_fps_thinning_is_described_by_the_row(corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    run_pipeline(_config(encode={"max_fps": 10}), [str(corpus / "bikes.ts")], str(out), runner="local")
    clips = read_table(out, "clips")
    assert len(clips) and (clips["fps"] == 10).all() and (clips["source_fps"] > 20).all()
    for (_, stored, claimed), d in zip(stored_vs_claimed(out), clips["duration_s"]):
        assert stored < claimed and abs(stored - d * 10) <= 1
    assert validate(str(out), decode=True) == []


@pytest.mark.shared
@pytest.mark.slow
def test_all_shared_videos_and_their_ts_copies_are_exact(shared_dir: Path, tmp_path: Path):
    root = tmp_path / "in"
    root.mkdir()
    names = set()
    for src in sorted((shared_dir / "media/videos").iterdir()):
        shutil.copy(src, root / src.name)
        names.add(src.name)
        if src.suffix == ".mp4":  # H.264: remuxes into TS
            ffmpeg("-i", src, "-an", "-c", "copy", "-f", "mpegts", root / f"{src.stem}.ts")
            names.add(f"{src.stem}.ts")
    out = tmp_path / "out"
    run_pipeline(_config(), [str(root)], str(out), runner="local")
    videos = pd.read_parquet(out / "videos.parquet")
    failed = videos[videos["status"] == "failed"]
    assert failed.empty, failed[["uri", "reason"]].to_string()
    counts = stored_vs_claimed(out)
    assert [c for c in counts if c[1] != c[2]] == []
    assert validate(str(out), decode=True) == []


# --- wide videos ------------------------------------------------------------


@pytest.mark.parametrize("size,rotation", [((1280, 160), None), ((1920, 200), None), ((1280, 96), None), ((1280, 96), 90)])
def test_wide_videos_get_finite_motion(tmp_path: Path, size, rotation):
    """These crashed the worker (SIGSEGV in DIS flow at 10-31 px tall) or scored NaN; a quarter turn makes them tall."""
    path = tmp_path / f"wide_{size[0]}x{size[1]}.mp4"
    synth.make_video(path, [(40, "pan_left"), (40, "static")], size=size, rotation=rotation)
    out = tmp_path / "out"
    cfg = _config(filter=dict(KEEP_ALL, min_motion=0.15), limits={"video_timeout_s": 60})
    run_pipeline(cfg, [str(path)], str(out), runner="local")
    (video,) = pd.read_parquet(out / "videos.parquet").to_dict("records")
    assert video["status"] == "done", video["reason"]
    rows = pd.concat([read_table(out, "clips"), read_table(out, "rejected")])
    assert len(rows) == 2 and all(math.isfinite(m) for m in rows["motion_score"])
    moving, still = rows.sort_values("start_frame").to_dict("records")
    assert moving["camera_motion"] == ("tilt_down" if rotation else "pan_left") and moving["motion_score"] > 0.15
    assert still["camera_motion"] == "static"


def test_motion_flow_size_keeps_a_minimum_side():
    from curate.analysis.motion import MIN_SIDE, flow_size

    assert flow_size(1280, 720, 160) == (160, 90)  # ordinary aspects: as before
    assert flow_size(640, 480, 160) == (160, 120)
    for w, h in [(1280, 160), (1920, 200), (1280, 96), (96, 1280), (4000, 10)]:
        assert min(flow_size(w, h, 160)) >= MIN_SIDE


def test_nan_score_is_a_clear_reason():
    from curate.config import FilterConfig
    from curate.decisions import filter_reasons as reject_reasons
    from curate.records import reason

    reasons = reject_reasons({"motion_score": float("nan"), "sharpness": 50.0, "brightness": 0.5, "black_fraction": 0.0,
                              "frozen_fraction": 0.0}, FilterConfig())
    assert reasons == [reason("min_motion", "motion_score not measurable (nan) for min_motion")]


# --- display aspect ---------------------------------------------------------


def test_anamorphic_source_is_stored_at_its_display_aspect(tmp_path: Path):
    src = tmp_path / "dvd.mp4"
    synth.make_video(tmp_path / "raw.mp4", [(50, "pan_left")], size=(720, 480))
    ffmpeg("-i", tmp_path / "raw.mp4", "-vf", "setsar=32/27", "-c:v", "libx264", "-preset", "ultrafast", src)
    out = tmp_path / "out"
    run_pipeline(_config(), [str(src)], str(out), runner="local")
    clips = read_table(out, "clips")
    assert len(clips)
    for r in clips.itertuples():
        assert (r.width, r.height, r.source_width, r.source_height) == (854, 480, 720, 480)
        with av.open(io.BytesIO(r.video)) as c:
            s = c.streams.video[0]
            f = next(c.decode(s))
            assert (f.width, f.height) == (854, 480) and s.sample_aspect_ratio in (None, 1)
    assert validate(str(out), decode=True) == []
    # reference mode and max_height describe the same display aspect
    run_pipeline(_config(encode={"mode": "reference"}), [str(src)], str(tmp_path / "ref"), runner="local")
    assert set(zip(read_table(tmp_path / "ref", "clips")["width"], read_table(tmp_path / "ref", "clips")["height"])) == {(854, 480)}
    run_pipeline(_config(encode={"max_height": 240}), [str(src)], str(tmp_path / "small"), runner="local")
    assert set(zip(read_table(tmp_path / "small", "clips")["width"], read_table(tmp_path / "small", "clips")["height"])) == {(426, 240)}
