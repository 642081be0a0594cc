"""Shot detection and clip spans: pure functions, synthetic videos, shared ground truth."""

from __future__ import annotations

import json
import random
import subprocess

import cv2
import numpy as np
import pytest

from curate.analysis.clips import ClipPlanner, ClipSpan, plan_clips, shot_ranges, split_shot
from curate.analysis.shot_eval import f1, score
from curate.analysis.detectors import build_detector
from curate.analysis.shots import Boundary, merge_boundaries
from curate.config import ClipsConfig
from curate.media.decode import iter_frames, small_rgb
from curate import synth


def detect(path, kind="adaptive", params=None, fades=True, width=192, fps=25.0) -> list[Boundary]:
    """Boundaries of a file, checking the ``settled()`` promise on the way."""
    det, found, last = build_detector(kind, params or {}, fades, fps), [], -1
    settled = 0
    for df in iter_frames(str(path)):
        new = det.process_frame(df.index, cv2.cvtColor(small_rgb(df.frame, width), cv2.COLOR_RGB2BGR))
        assert all(b.start >= settled for b in new), f"{new} reported before settled={settled}"
        settled = det.settled()
        assert settled <= df.index + 1
        found += new
        last = df.index
    return merge_boundaries(found + det.post_process(last), 2)


# --- clip spans (pure) ---------------------------------------------------------

def _times(n: int, fps: float = 25.0):
    starts = np.arange(n) / fps
    return starts, starts + 1 / fps


CFG = ClipsConfig(min_s=2.0, max_s=4.0, trim_frames=2)


def test_merge_boundaries():
    b = merge_boundaries([Boundary(50, 50), Boundary(10, 10), Boundary(30, 40), Boundary(35, 45), Boundary(10, 10), Boundary(46, 46)], 2)
    assert b == [Boundary(10, 10), Boundary(30, 46), Boundary(50, 50)]
    assert merge_boundaries([Boundary(10, 10), Boundary(11, 11)], 2) == [Boundary(10, 10), Boundary(11, 11)]


def test_shot_ranges_mark_boundary_sides():
    assert shot_ranges([Boundary(100, 100), Boundary(150, 170)], 300) == [
        (0, 100, False, True), (100, 150, True, True), (170, 300, True, False)
    ]
    assert shot_ranges([Boundary(0, 20)], 50) == [(20, 50, True, False)]


def test_split_shot_trims_windows_and_remainder():
    starts, ends = _times(400)
    # 0..250 (10 s) ends at a boundary: trims the end only -> 4 s, 4 s, remainder 1.92 s dropped
    assert split_shot(0, 250, starts, ends, CFG, trim_start=False) == [(0, 100), (100, 200)]
    # a remainder >= min_s is kept
    assert split_shot(0, 360, starts, ends, CFG, trim_start=False, trim_end=False) == [(0, 100), (100, 200), (200, 300), (300, 360)]
    # too short after trimming both sides: 54 frames - 4 = 50 = 2.0 s exactly is kept, 53 is not
    assert split_shot(100, 154, starts, ends, CFG) == [(102, 152)]
    assert split_shot(100, 153, starts, ends, CFG) == []


def test_split_shot_open_returns_complete_windows_only():
    starts, ends = _times(400)
    assert split_shot(0, 150, starts, ends, CFG, trim_start=False, closed=False) == [(0, 100)]
    assert split_shot(0, 101, starts, ends, CFG, trim_start=False, closed=False) == []


def test_split_shot_durations_follow_frame_times_vfr():
    # 10 fps for the first 20 frames (2 s) then 50 fps: a 4 s window holds 20 + 100 frames
    gaps = [0.1] * 20 + [0.02] * 300
    starts = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
    ends = starts + np.array(gaps)
    windows = split_shot(0, 320, starts, ends, CFG, trim_start=False, trim_end=False)
    assert windows[0] == (0, 120)
    for a, b in windows:
        assert ends[b - 1] - starts[a] <= CFG.max_s + 1e-9


def test_plan_clips_counts_too_short_shots():
    starts, ends = _times(500)
    clips, too_short = plan_clips([Boundary(30, 30), Boundary(200, 230)], starts, ends, CFG)
    assert too_short == 1  # frames 0..30
    assert clips == [
        ClipSpan(1, 0, 32, 132), ClipSpan(1, 1, 132, 198),
        ClipSpan(2, 0, 232, 332), ClipSpan(2, 1, 332, 432), ClipSpan(2, 2, 432, 500),
    ]


def test_planner_streaming_equals_plan_clips():
    rng = random.Random(0)
    for _ in range(150):
        n = rng.randint(1, 700)
        gaps = [rng.choice([0.04, 0.08]) for _ in range(n)]
        starts = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
        ends = starts + np.array(gaps)
        bounds = [Boundary(s, min(n, s + rng.choice([0, 0, rng.randint(1, 30)]))) for s in (rng.randrange(n) for _ in range(rng.randint(0, 6)))]
        cfg = ClipsConfig(min_s=rng.choice([1.0, 2.0]), max_s=rng.choice([2.0, 5.0]), trim_frames=rng.choice([0, 2]))
        latency = rng.randint(0, 40)
        planner, got = ClipPlanner(cfg), []
        for i in range(n):  # boundary b is reported at frame b.start + latency
            planner.add([b for b in bounds if b.start + latency == i])
            frontier = min([i + 1 - latency] + [b.start for b in bounds if b.start + latency > i])
            got += planner.advance(max(frontier, 0), starts[: i + 1], ends[: i + 1])
        planner.add([b for b in bounds if b.start + latency >= n])
        got += planner.finish(starts, ends)
        assert (got, planner.too_short) == plan_clips(bounds, starts, ends, cfg)


# --- synthetic videos -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["adaptive", "content"])
def test_synthetic_hard_cuts_exact(tmp_path, kind):
    truth = synth.make_video(
        tmp_path / "cuts.mp4",
        [(40, "moving"), (30, "pan_left"), (35, "static"), (25, "tilt_up"), (40, "zoom_in"), (30, "pan_right")],
    )
    pred = detect(tmp_path / "cuts.mp4", kind)
    assert [b.start for b in pred] == list(truth)
    assert all(b.is_cut for b in pred)


def test_synthetic_gradual_transitions_are_spans(tmp_path):
    # the linear-mix test needs modest motion during a dissolve (TransNetV2 handles the rest)
    truth = synth.make_video(
        tmp_path / "grad.mp4",
        [(40, "static"), ("dissolve", 15), (40, "static"), ("fade", 16), (40, "moving"), (20, "black"), (40, "tilt_down")],
    )
    pred = detect(tmp_path / "grad.mp4")
    events = [(s, e) for s, e in truth.transitions] + [(truth[0], truth[1])]  # the black shot: one event
    assert len(pred) == len(events)
    for s, e in events:  # each transition lies inside one reported span
        assert any(b.start <= s + 2 and e - 2 <= b.end for b in pred), (s, e, pred)


def test_low_frame_rate_source_repeats_make_no_cuts(tmp_path):
    # 8 distinct pictures per second shown at 24 fps: every third frame changes
    src = tmp_path / "src.mp4"
    synth.make_video(src, [(40, "moving")], fps=8)
    out = tmp_path / "up.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", "fps=24", "-c:v", "libx264", "-preset", "ultrafast", str(out)], check=True)
    assert detect(out) == []


# --- shared media -----------------------------------------------------------------

@pytest.mark.shared
def test_bikes_ground_truth(shared_dir):
    gt = json.loads((shared_dir / "media/annotations/bikes.gt.json").read_text())
    pred = detect(shared_dir / "media/videos/bikes.mp4")
    assert f1(*score(pred, gt["cuts"])) >= 0.95


@pytest.mark.shared
def test_composite_ground_truth(shared_dir):
    gt = json.loads((shared_dir / "media/annotations/composite_cuts_dissolve_fade.gt.json").read_text())
    cuts = [t["frame"] for t in gt["transitions"] if t["type"] == "cut"]
    spans = [(t["start"], t["end"]) for t in gt["transitions"] if t["type"] != "cut"]
    pred = detect(shared_dir / "media/videos/composite_cuts_dissolve_fade.mp4")
    assert f1(*score(pred, cuts, spans)) >= 0.95


# sources without cuts of their own, and where to cut a 2-3 s segment from
_SEGMENTS = {
    "box.mp4": 3.0, "cup.mp4": 1.0, "chaplin.mp4": 2.0, "cockatoo.mp4": 5.0, "flipping_a_pancake.mkv": 4.0,
    "vtest.avi": 20.0, "carphone_pristine.mp4": 0.5, "big_buck_bunny_5s.mp4": 1.0, "tree.avi": 1.0, "fire2.mp4": 0.0,
}


@pytest.fixture(scope="module")
def real_composites(shared_dir, tmp_path_factory):
    """Four composites of 2-3 s segments of different real videos, hard cuts only."""
    rng = random.Random(7)
    out = []
    names = list(_SEGMENTS)
    for k in range(4):
        picks = rng.sample(names, 4)
        segs = [(shared_dir / "media/videos" / n, _SEGMENTS[n], rng.randint(50, 70) if n != "fire2.mp4" else 55) for n in picks]
        path = tmp_path_factory.mktemp("comp") / f"c{k}.mp4"
        out.append((path, synth.concat_segments(path, segs, size=(480, 270))))
    return out


@pytest.mark.shared
def test_real_composites_hard_cut_f1(real_composites):
    tp = fp = fn = 0
    for path, truth in real_composites:
        a, b, c = score(detect(path), list(truth))
        tp, fp, fn = tp + a, fp + b, fn + c
    assert f1(tp, fp, fn) >= 0.95, (tp, fp, fn)


@pytest.mark.shared
def test_short_shots_hard_cut_f1(shared_dir, tmp_path):
    """Shots of 8-30 frames: cuts follow each other faster than PySceneDetect's default 15."""
    rng = random.Random(5)
    names = list(_SEGMENTS)
    segs, prev = [], None
    for _ in range(10):
        name = rng.choice([n for n in names if n != prev])
        segs.append((shared_dir / "media/videos" / name, _SEGMENTS[name], rng.randint(8, 30)))
        prev = name
    truth = synth.concat_segments(tmp_path / "short.mp4", segs, size=(480, 270))
    assert f1(*score(detect(tmp_path / "short.mp4"), list(truth))) >= 0.95


@pytest.mark.shared
def test_transnet_composite_ground_truth(shared_dir):
    gt = json.loads((shared_dir / "media/annotations/composite_cuts_dissolve_fade.gt.json").read_text())
    cuts = [t["frame"] for t in gt["transitions"] if t["type"] == "cut"]
    spans = [(t["start"], t["end"]) for t in gt["transitions"] if t["type"] != "cut"]
    pred = detect(shared_dir / "media/videos/composite_cuts_dissolve_fade.mp4", "transnetv2", fades=False)
    assert score(pred, cuts, spans) == (4, 0, 0)
    gradual = [b for b in pred if not b.is_cut]
    assert len(gradual) == 2 and all(b.end - b.start >= 15 for b in gradual)


def test_transnet_restores_deterministic_setting():
    import torch

    from curate.analysis.transnet import load_model

    before = torch.are_deterministic_algorithms_enabled()
    load_model()
    assert torch.are_deterministic_algorithms_enabled() == before


@pytest.mark.slow
@pytest.mark.shared
def test_transnet_gradual_f1_on_xfade_composites(shared_dir, tmp_path):
    rng = random.Random(3)
    names = [n for n in _SEGMENTS if n != "fire2.mp4"]
    tp = fp = fn = 0
    for k in range(4):
        picks = rng.sample(names, 4)
        segs = [(shared_dir / "media/videos" / n, _SEGMENTS[n], 75) for n in picks]
        trans = [rng.choice([("dissolve", rng.randint(10, 25)), ("fade", rng.randint(12, 25))]) for _ in range(3)]
        truth = synth.concat_segments(tmp_path / f"g{k}.mp4", segs, size=(480, 270), transitions=trans)
        pred = [b for b in detect(tmp_path / f"g{k}.mp4", "transnetv2", fades=False) if not b.is_cut]
        a, b, c = score(pred, [], truth.transitions)
        tp, fp, fn = tp + a, fp + b, fn + c
    assert f1(tp, fp, fn) >= 0.85, (tp, fp, fn)
