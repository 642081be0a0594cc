"""The streaming decode: frame times, seeking, small frames, rotation, remote URIs."""

from __future__ import annotations

import subprocess

import av
import fsspec
import numpy as np
import pytest

from curate.media import decode
from curate.media.decode import frame_rotation, iter_frames, rotate_image, small_luma, small_rgb
from curate import synth


@pytest.mark.parametrize(
    "codec,pix_fmt,ext",
    [
        ("libx264", "yuv420p", "mp4"),
        ("libx264", "yuv420p10le", "mp4"),
        ("ffv1", "yuv444p", "mkv"),
        ("ffv1", "yuv422p", "mkv"),
        ("ffv1", "gray", "mkv"),
        ("ffv1", "yuv444p12le", "mkv"),
        ("rawvideo", "nv12", "mkv"),
        ("mjpeg", "yuvj420p", "mkv"),
        ("ffv1", "bgr0", "mkv"),  # not a fast-path format: swscale fallback
    ],
)
def test_small_frames_match_swscale(tmp_path, codec, pix_fmt, ext):
    path = tmp_path / f"v.{ext}"
    synth.make_video(path, [(3, "smooth")], size=(318, 238), codec=codec, pix_fmt=pix_fmt)
    df = next(iter_frames(str(path)))
    assert df.frame.format.name == pix_fmt
    rgb, luma = small_rgb(df.frame, 96), small_luma(df.frame, 96)
    assert rgb.shape == (72, 96, 3) and rgb.dtype == np.uint8
    assert luma.shape == (72, 96) and luma.dtype == np.uint8
    # resamplers (and swscale's fast 4:2:0 path) differ by a few levels, a wrong
    # plane, range or matrix by tens
    diff = rgb.astype(int) - df.frame.to_ndarray(format="rgb24", width=96, height=72).astype(int)
    assert np.abs(diff).mean() < 5
    assert np.all(np.abs(diff.mean(axis=(0, 1))) < 2.5)


def test_times_come_from_pts_on_vfr(tmp_path):
    path = tmp_path / "vfr.mp4"
    times = synth.make_vfr_video(path, 30)
    frames = list(iter_frames(str(path)))
    assert [f.index for f in frames] == list(range(30))
    assert np.allclose([f.time_s for f in frames], times, atol=1e-3)
    assert np.allclose([f.end_s for f in frames[:-1]], times[1:], atol=1e-3)
    assert frames[-1].end_s > frames[-1].time_s


def test_seek_yields_the_same_times_and_pixels(tmp_path):
    path = tmp_path / "v.mp4"
    synth.make_video(path, [(60, "moving"), (60, "pan_left")], options={"g": "25"})
    full = list(iter_frames(str(path)))
    start = full[70].time_s
    sought = list(iter_frames(str(path), start_s=start))
    assert sought[0].time_s == start and all(f.index == -1 for f in sought)
    assert [f.time_s for f in sought] == [f.time_s for f in full[70:]]
    assert np.array_equal(small_luma(sought[5].frame, 64), small_luma(full[75].frame, 64))


def test_decode_pass_counter(tmp_path):
    path = str(tmp_path / "v.mp4")
    synth.make_video(path, [(5, "static")])
    with decode.count_decode_passes() as passes:
        list(iter_frames(path))
    assert passes[path] == 1


def test_rotation_matches_ffmpeg_autorotate(tmp_path):
    for degrees in (90, 180, 270):
        path = tmp_path / f"r{degrees}.mp4"
        synth.make_video(path, [(2, "moving")], size=(64, 48), rotation=degrees)
        df = next(iter_frames(str(path)))
        assert frame_rotation(df.frame) == degrees
        mine = rotate_image(df.frame.to_ndarray(format="rgb24"), degrees)
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            capture_output=True, check=True,
        ).stdout
        assert np.array_equal(np.frombuffer(raw, np.uint8).reshape(mine.shape), mine)


def test_fsspec_uri(tmp_path):
    path = tmp_path / "v.mp4"
    truth = synth.make_video(path, [(10, "static"), (10, "moving")])
    fs = fsspec.filesystem("memory")
    fs.pipe("/curate-test/v.mp4", path.read_bytes())
    try:
        assert len(list(iter_frames("memory://curate-test/v.mp4"))) == truth.num_frames
        assert len(list(iter_frames(f"file://{path}"))) == truth.num_frames
    finally:
        fs.rm("/curate-test/v.mp4")


def test_truncated_stream_yields_what_decoded(tmp_path):
    src = tmp_path / "v.mkv"
    synth.make_video(src, [(100, "moving")])
    cut = tmp_path / "cut.mkv"
    synth.truncate_copy(src, cut, 0.5)
    frames = []
    try:
        for f in iter_frames(str(cut)):
            frames.append(f)
    except av.error.FFmpegError:
        pass
    assert 20 < len(frames) < 100


@pytest.mark.shared
@pytest.mark.parametrize("name,frames", [("tree.avi", 68), ("vtest.avi", 795), ("test.webm", 94)])
def test_odd_sources_decode_fully(shared_dir, name, frames):
    n = 0
    for df in iter_frames(str(shared_dir / "media/videos" / name)):
        if n == 0:
            assert small_rgb(df.frame, 64).shape[1] == 64
        n += 1
    assert n == frames


@pytest.mark.shared
def test_seek_on_false_keyframes_falls_back_to_full_decode(shared_dir):
    # cockatoo.mp4 flags non-IDR frames as keyframes: seeking there decodes garbage
    uri = str(shared_dir / "media/videos/cockatoo.mp4")
    ref = {round(d.time_s, 3): small_luma(d.frame, 64) for d in iter_frames(uri) if 4.0 <= d.time_s < 4.5}
    got = [d for d in iter_frames(uri, start_s=4.0) if d.time_s < 4.5]
    assert [round(d.time_s, 3) for d in got] == sorted(ref)
    for d in got:
        assert np.abs(small_luma(d.frame, 64).astype(int) - ref[round(d.time_s, 3)]).mean() < 1


# --- timeline: one time function for analysis and encode -----------------------

from fractions import Fraction  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from curate.media.decode import Timeline  # noqa: E402


def _times(frames: list[tuple[int | None, int | None]], container=None) -> tuple[list[float], Timeline]:
    stream = SimpleNamespace(time_base=Fraction(1, 100), average_rate=Fraction(25), guessed_rate=None, base_rate=None,
                             sample_aspect_ratio=None, codec_context=None)
    tl = Timeline(stream, container)
    return [round(tl.time(SimpleNamespace(pts=p, dts=d)), 3) for p, d in frames], tl


def test_timeline_regular_pts_are_the_times():
    times, tl = _times([(0, -4), (4, 0), (8, 4), (20, 8)])  # B-frame delay in dts, a VFR gap in pts
    assert times == [0.0, 0.04, 0.08, 0.2] and tl.regular


def test_timeline_uses_dts_when_pts_are_faulty_like_ffmpeg():
    # box.mp4: pts out of order in output order, dts increasing -> best_effort_timestamp takes dts
    times, tl = _times([(0, 0), (10, 10), (6, 13), (13, 16), (3, 20), (20, 23)])
    assert times == [0.0, 0.1, 0.13, 0.16, 0.2, 0.23]
    assert not tl.regular and "faulty pts" in tl.irregular


def test_timeline_frames_without_timestamps_continue_and_increase():
    times, tl = _times([(None, None), (None, None), (0, None), (4, None)])  # MKV negative timestamps
    assert times == [0.0, 0.04, 0.08, 0.12] and tl.irregular == "frames without timestamps"


def test_timeline_reset_and_discontinuity():
    times, tl = _times([(100, None), (104, None), (0, None), (4, None)])  # spliced TS: back to 0
    assert times == [1.0, 1.04, 1.08, 1.12] and "jump" in tl.irregular
    ts = SimpleNamespace(format=SimpleNamespace(flags=0x0200))  # MPEG-TS: a 20 s forward jump is one too
    assert _times([(0, None), (4, None), (2004, None)], ts)[0] == [0.0, 0.04, 0.08]
    assert _times([(0, None), (4, None), (2004, None)])[0] == [0.0, 0.04, 20.04]  # elsewhere a long frame


@pytest.mark.parametrize("fmt", [["-c", "copy", "-f", "mpegts"], ["-c:v", "mpeg2video", "-q:v", "4", "-f", "mpeg"]])
def test_seek_in_streams_without_index_lands_on_the_frame(tmp_path, fmt):
    """TS/PS seeks land after the target; iter_frames seeks further back until the target frame comes out."""
    src, path = tmp_path / "v.mp4", tmp_path / "v.out"
    synth.make_video(src, [(60, "moving"), (60, "pan_left")], options={"g": "25"})
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *fmt, str(path)], check=True)
    full = list(iter_frames(str(path)))
    assert len(full) == 120
    for k in (30, 70, 110):
        sought = iter_frames(str(path), start_s=full[k].time_s)
        got = [next(sought) for _ in range(5)]
        sought.close()
        assert [f.time_s for f in got] == [f.time_s for f in full[k : k + 5]]
        assert np.array_equal(small_luma(got[0].frame, 64), small_luma(full[k].frame, 64))
