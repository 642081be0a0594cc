"""Probe and ProbeStage: header facts, rejections (does not qualify) and failures (cannot read)."""

from __future__ import annotations

import pytest

from curate.config import PipelineConfig, ProbeConfig
from curate.media.probe import probe
from curate.stages.probe import ProbeStage
from curate import synth


def run(path, **probe_cfg) -> dict:
    stage = ProbeStage(probe=ProbeConfig(**probe_cfg))
    return stage.process([{"uri": str(path), "video_id": "v", "status": "pending"}])[0]


def test_probe_reads_headers_and_first_frame(tmp_path):
    path = tmp_path / "v.mp4"
    synth.make_video(path, [(50, "moving")], size=(160, 120), fps=25, pix_fmt="yuv420p10le", rotation=90, audio=True)
    info = probe(str(path))
    assert info["has_video"] and info["has_audio"]
    assert (info["codec"], info["pix_fmt"], info["bit_depth"]) == ("h264", "yuv420p10le", 10)
    assert (info["width"], info["height"], info["rotation"]) == (160, 120, 90)
    assert info["fps"] == pytest.approx(25) and info["duration_s"] == pytest.approx(2.0, abs=0.05)
    assert info["num_frames"] == 50 and info["sar"] == 1.0
    assert info["container"].startswith("mov,mp4")


def test_stage_passes_a_good_video(tmp_path):
    synth.make_video(tmp_path / "v.mp4", [(50, "moving")])
    out = run(tmp_path / "v.mp4")
    assert out["status"] == "pending" and out["probe"]["codec"] == "h264"


def test_zero_bytes_and_garbage_fail(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    synth.write_garbage(tmp_path / "junk.mp4")
    for name in ("empty.mp4", "junk.mp4"):
        out = run(tmp_path / name)
        assert out["status"] == "failed" and out["reason"].startswith("probe: unreadable"), out


def test_truncated_file_fails(tmp_path):
    synth.make_video(tmp_path / "v.mp4", [(100, "moving")])  # moov atom at the end
    synth.truncate_copy(tmp_path / "v.mp4", tmp_path / "cut.mp4", 0.5)
    out = run(tmp_path / "cut.mp4")
    assert out["status"] == "failed" and "unreadable" in out["reason"]


def test_missing_file_fails(tmp_path):
    assert run(tmp_path / "nope.mp4")["status"] == "failed"


def test_audio_only_is_rejected(tmp_path):
    synth.make_audio_only(tmp_path / "a.m4a")
    out = run(tmp_path / "a.m4a")
    assert out["status"] == "rejected" and out["reason"] == "no video stream (audio only)"


def test_unknown_codec_fails(tmp_path):
    synth.make_video(tmp_path / "v.avi", [(5, "moving")], codec="mpeg4")
    data = (tmp_path / "v.avi").read_bytes().replace(b"FMP4", b"ZQX9")  # a fourcc nobody decodes
    (tmp_path / "odd.avi").write_bytes(data)
    out = run(tmp_path / "odd.avi")
    assert out["status"] == "failed" and "unsupported codec" in out["reason"]


def test_too_small_after_rotation_is_rejected(tmp_path):
    synth.make_video(tmp_path / "tall.mp4", [(30, "moving")], size=(128, 48), rotation=90)
    out = run(tmp_path / "tall.mp4", min_width=64, min_height=64)  # displayed 48x128
    assert out["status"] == "rejected" and out["reason"].startswith("too small: 48x128")


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_header_duration_is_not_trusted(tmp_path, ext):
    """A header claiming 0.3 s of a 5 s video: probe passes it on, the decoded 5 s count."""
    from curate.stages.analyse import AnalyseStage

    synth.make_video(tmp_path / f"long.{ext}", [(125, "moving")], size=(192, 144))
    synth.lie_about_duration(tmp_path / f"long.{ext}", tmp_path / f"lie.{ext}", 0.3)
    assert probe(str(tmp_path / f"lie.{ext}"))["duration_s"] == pytest.approx(0.3)
    out = run(tmp_path / f"lie.{ext}", min_duration_s=1.0)
    assert out["status"] == "pending", out.get("reason")
    cfg = PipelineConfig.model_validate({"probe": {"min_duration_s": 1.0}, "clips": {"min_s": 1.0, "max_s": 4.0}})
    out = AnalyseStage(clips=cfg.clips, probe=cfg.probe).process([out])[0]
    assert out["status"] == "pending" and out["decoded"]["num_frames"] == 125
    assert out["decoded"]["duration_s"] == pytest.approx(5.0) and out["clips"]


def test_short_is_rejected_on_the_decoded_duration(tmp_path):
    from curate.stages.analyse import AnalyseStage

    synth.make_video(tmp_path / "short.mp4", [(10, "moving")])
    cfg = PipelineConfig(probe=ProbeConfig(min_duration_s=1.0))
    out = run(tmp_path / "short.mp4", min_duration_s=1.0)
    assert out["status"] == "pending"  # the header's 0.4 s alone is no evidence
    out = AnalyseStage(probe=cfg.probe).process([out])[0]
    assert out["status"] == "rejected" and out["reason"].startswith("too short: 0.40 s")


@pytest.mark.shared
def test_shared_headers(shared_dir):
    videos = shared_dir / "media/videos"
    webm = probe(str(videos / "test.webm"))
    assert webm["duration_s"] is None and webm["codec"] == "h264"  # no duration header: not rejected
    assert run(videos / "test.webm")["status"] == "pending"
    tree = probe(str(videos / "tree.avi"))
    assert (tree["codec"], tree["num_frames"]) == ("cinepak", 444)  # the header's claim (68 decode)
    assert probe(str(videos / "fire2.mp4"))["rotation"] == 180
