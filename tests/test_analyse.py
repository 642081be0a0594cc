"""AnalyseStage end to end: one decode pass, clip rows, motion/quality measures, odd sources."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from curate.config import AnalysisConfig, ClipsConfig, PipelineConfig, ProbeConfig
from curate.media import decode
from curate.stages import analyse as analyse_mod
from curate.stages.analyse import AnalyseStage
from curate.stages.probe import ProbeStage
from curate import synth

SCHEMA = Path(__file__).resolve().parents[1] / "schemas/clip.v1.json"
LATER_COLUMNS = {"video", "video_format", "run_id", "config_hash"}  # encode stage and writer


def analyse(path, config: PipelineConfig | None = None, **record) -> dict:
    config = config or PipelineConfig()
    video = {"uri": str(path), "video_id": "vid", "status": "pending", "caption": "a caption", "caption_source": "manifest", **record}
    video = ProbeStage(probe=config.probe).process([video])[0]
    stage = AnalyseStage(detector=config.detector, clips=config.clips, analysis=config.analysis, probe=config.probe)
    return stage.process([video])[0]


def assert_clean(clips, cuts=(), spans=()):
    """No clip holds a frame of a transition or straddles a cut."""
    for c in clips:
        for cut in cuts:
            assert not (c["start_frame"] < cut < c["end_frame"]) and c["start_frame"] != cut - 1, (c["start_frame"], c["end_frame"], cut)
        for s, e in spans:
            assert c["end_frame"] <= s or c["start_frame"] > e, (c["start_frame"], c["end_frame"], s, e)


def test_one_decode_pass_and_complete_clip_rows(tmp_path):
    path = tmp_path / "v.mp4"
    truth = synth.make_video(path, [(60, "moving"), (80, "pan_left"), (40, "static"), (300, "tilt_up")])
    with decode.count_decode_passes() as passes:
        out = analyse(path, input_meta='{"k": 1}')
    assert passes[str(path)] == 1
    assert out["status"] == "pending"
    assert out["decoded"] == {"num_frames": 480, "duration_s": pytest.approx(19.2), "fps": pytest.approx(25.0), "irregular": None}
    assert [b[0] for b in out["boundaries"]] == list(truth)
    clips = out["clips"]
    # 60 -> 58 frames, 80 -> 76, 40 -> 36 (< 2 s, dropped), 300 -> 10 s window + 1.9 s remainder (dropped)
    assert [(c["shot_index"], c["window_index"], c["start_frame"], c["end_frame"]) for c in clips] == [
        (0, 0, 0, 58), (1, 0, 62, 138), (3, 0, 182, 432)
    ]
    assert out["shots_too_short"] == 1
    assert_clean(clips, truth)
    columns = {f["name"] for f in json.loads(SCHEMA.read_text())["fields"]} - LATER_COLUMNS
    for c in clips:
        assert columns <= set(c), columns - set(c)
        assert c["num_frames"] == c["end_frame"] - c["start_frame"]
        assert c["start_s"] == pytest.approx(c["start_frame"] / 25) and c["end_s"] == pytest.approx(c["end_frame"] / 25)
        assert c["duration_s"] == pytest.approx(c["end_s"] - c["start_s"])
        assert (c["width"], c["height"], c["source_codec"], c["source_pix_fmt"]) == (320, 240, "h264", "yuv420p")
        assert len(c["phash"]) == 16 and int(c["phash"], 16) >= 0
        assert c["thumbnail"][:2] == b"\xff\xd8"
        assert len(c["_frames"]) == 3 and c["_frames"][0].shape == (192, 256, 3)
        assert (c["caption"], c["input_meta"]) == ("a caption", '{"k": 1}')
    assert len({c["clip_id"] for c in clips}) == 3
    assert [c["clip_id"] for c in analyse(path)["clips"]] == [c["clip_id"] for c in clips]  # deterministic


@pytest.mark.parametrize("fps, trim", [(25, 2), (50, 4)])
def test_trim_is_counted_in_analysed_frames(tmp_path, fps, trim):
    """``clips.trim_frames`` is 2 analysed frames: 50 fps video is analysed on every 2nd frame, so 4 of its own."""
    path = tmp_path / "v.mp4"
    n = 3 * fps  # 3 s shots
    truth = synth.make_video(path, [(n, "moving"), (n, "pan_left")], size=(192, 144), fps=fps)
    out = analyse(path)
    assert [b[0] for b in out["boundaries"]] == list(truth) == [n]
    assert [(c["start_frame"], c["end_frame"]) for c in out["clips"]] == [(0, n - trim), (n + trim, 2 * n)]


def test_camera_motion_labels(tmp_path):
    kinds = ["pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "static"]
    path = tmp_path / "motion.mp4"
    synth.make_video(path, [(60, k) for k in kinds])
    clips = analyse(path)["clips"]
    assert [c["camera_motion"] for c in clips] == kinds
    by = {c["camera_motion"]: c for c in clips}
    assert by["pan_left"]["camera_pan"] == pytest.approx(1.5, rel=0.2)  # 3 px/frame at 320 -> 1.5 at 160
    assert by["tilt_down"]["camera_tilt"] == pytest.approx(-1.5, rel=0.2)
    assert by["zoom_in"]["camera_zoom"] > 0 > by["zoom_out"]["camera_zoom"]
    assert by["static"]["motion_score"] < 0.05 < 1.0 < by["pan_right"]["motion_score"]


def test_technical_measures(tmp_path):
    path = tmp_path / "tech.mp4"
    synth.make_video(path, [(60, "moving"), (60, "static"), (60, "black")])
    cfg = PipelineConfig(detector={"fades": False})  # keep the black shot as a clip
    moving, static, black = analyse(path, cfg)["clips"]
    assert black["black_fraction"] == 1.0 and black["brightness"] < 0.06 and black["contrast"] < 0.01
    assert moving["black_fraction"] == 0.0 and 0.1 < moving["brightness"] < 0.9 and moving["contrast"] > 0.05
    assert static["frozen_fraction"] > 0.9 and moving["frozen_fraction"] < 0.1
    assert moving["sharpness"] > 50 > black["sharpness"]


def test_rotation_gives_display_size_and_rotated_samples(tmp_path):
    path = tmp_path / "rot.mp4"
    synth.make_video(path, [(60, "pan_left")], rotation=90)
    (clip,) = analyse(path)["clips"]
    assert (clip["width"], clip["height"], clip["source_width"], clip["source_height"]) == (240, 320, 320, 240)
    assert clip["source_rotation"] == 90
    assert clip["_frames"][0].shape == (341, 256, 3)  # sample_width is the displayed width
    assert clip["camera_motion"] == "tilt_down"  # content moving right, turned a quarter counter-clockwise, moves up


def test_vfr_clip_times_come_from_pts(tmp_path):
    path = tmp_path / "vfr.mp4"
    times = synth.make_vfr_video(path, 120)
    out = analyse(path, PipelineConfig(clips=ClipsConfig(min_s=1.0, max_s=3.0)))
    assert out["clips"]
    for c in out["clips"]:
        assert c["start_s"] == pytest.approx(times[c["start_frame"]], abs=1e-3)
        end = times[c["end_frame"]] if c["end_frame"] < len(times) else c["end_s"]
        assert c["end_s"] == pytest.approx(end, abs=1e-3)
        assert c["duration_s"] <= 3.0 + 1e-6


def test_ten_bit_source(tmp_path):
    path = tmp_path / "v10.mp4"
    synth.make_video(path, [(60, "moving"), (60, "pan_left")], pix_fmt="yuv420p10le")
    clips = analyse(path)["clips"]
    assert [c["source_pix_fmt"] for c in clips] == ["yuv420p10le"] * 2


def test_truncated_source_keeps_what_decoded(tmp_path):
    src = tmp_path / "v.mkv"
    synth.make_video(src, [(150, "moving")])
    synth.truncate_copy(src, tmp_path / "cut.mkv", 0.6)
    out = analyse(tmp_path / "cut.mkv")
    assert out["status"] == "pending" and 60 < out["decoded"]["num_frames"] < 150
    assert out["clips"] and out["clips"][-1]["end_frame"] <= out["decoded"]["num_frames"]


def test_decoded_duration_rechecked(tmp_path):
    path = tmp_path / "short.mp4"
    synth.make_video(path, [(10, "moving")])
    stage = AnalyseStage(probe=ProbeConfig(min_duration_s=1.0))
    out = stage.process([{"uri": str(path), "video_id": "v", "status": "pending", "probe": {"fps": 25.0}}])[0]
    assert out["status"] == "rejected" and out["reason"] == "too short: 0.40 s < min 1 s"


def test_nothing_decodes_fails(tmp_path):
    synth.write_garbage(tmp_path / "junk.mp4")
    out = AnalyseStage().process([{"uri": str(tmp_path / "junk.mp4"), "video_id": "v", "status": "pending"}])[0]
    assert out["status"] == "failed" and out["reason"].startswith("analyse: nothing decodes")


def test_sample_buffer_is_bounded_by_window_not_video(tmp_path, monkeypatch):
    path = tmp_path / "long.mp4"
    synth.make_video(path, [(1500, "static")], size=(96, 64))  # 60 s
    sizes = []
    consume = analyse_mod.FrameSampler.consume
    monkeypatch.setattr(analyse_mod.FrameSampler, "consume", lambda self, df: (consume(self, df), sizes.append(len(self))))
    cfg = PipelineConfig(clips=ClipsConfig(min_s=2.0, max_s=4.0), analysis=AnalysisConfig(sample_width=32))
    out = analyse(path, cfg)
    assert len(out["clips"]) == 15
    grid = max(1, min(analyse_mod.MAX_GRID, int(2.0 * 25 / 6)))
    assert max(sizes) <= (4.0 * 25 + 30) / grid + 2  # one window plus detector latency


# --- shared media -----------------------------------------------------------------

@pytest.mark.shared
def test_composite_clips_hold_no_transition(shared_dir):
    gt = json.loads((shared_dir / "media/annotations/composite_cuts_dissolve_fade.gt.json").read_text())
    out = analyse(shared_dir / "media/videos/composite_cuts_dissolve_fade.mp4")
    cuts = [t["frame"] for t in gt["transitions"] if t["type"] == "cut"]
    spans = [(t["start"], t["end"]) for t in gt["transitions"] if t["type"] != "cut"]
    assert out["clips"]
    assert_clean(out["clips"], cuts, spans)


@pytest.mark.shared
def test_bikes_clips_hold_no_cut(shared_dir):
    gt = json.loads((shared_dir / "media/annotations/bikes.gt.json").read_text())
    out = analyse(shared_dir / "media/videos/bikes.mp4")
    assert out["clips"]
    assert_clean(out["clips"], gt["cuts"])


@pytest.mark.shared
@pytest.mark.parametrize("name,frames", [("tree.avi", 68), ("vtest.avi", 795), ("test.webm", 94), ("fire2.mp4", 25)])
def test_odd_sources(shared_dir, name, frames):
    out = analyse(shared_dir / "media/videos" / name)
    assert out["status"] == "pending", out.get("reason")
    assert out["decoded"]["num_frames"] == frames
    assert out["clips"]


def test_phash_separates_near_duplicates_from_different_images():
    from curate.analysis.phash import hamming, phash

    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.integers(0, 256, (144, 256, 3), dtype=np.uint8), (0, 0), 4)
    noisy = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    b = cv2.GaussianBlur(rng.integers(0, 256, (144, 256, 3), dtype=np.uint8), (0, 0), 4)
    assert len(phash(a)) == 16 and phash(a) == phash(a.copy())
    assert hamming(phash(a), phash(noisy)) <= 6 < 20 <= hamming(phash(a), phash(b))
