"""The clip purity check (issue 8): a cut or transition the shot detector missed never stays inside a clip.

The detector is made to miss on purpose (PySceneDetect's content detector
with a threshold no change reaches, no fade detector), so every boundary
left in a clip is the purity check's to find: it splits the clip, or rejects
it as ``contains_transition`` when nothing long enough is left. Clean clips
(high motion, camera moves, a flash, real cut-free footage) stay as they are.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from curate import synth
from curate.analysis.purity import PurityCheck, pieces
from curate.analysis.shot_eval import clips_with_boundary
from curate.config import PipelineConfig
from curate.decisions import CONTAINS_TRANSITION, decide
from curate.records import reason_keys
from curate.synth_transitions import Segment, concat_with_transitions
from tests.test_analyse import analyse, assert_clean

BLIND = {"kind": "content", "params": {"threshold": 254.0}, "fades": False}  # finds no boundary at all


def _config(purity: bool = True, **clips) -> PipelineConfig:
    return PipelineConfig.model_validate({"detector": BLIND, "clips": {**clips, "purity": {"enabled": purity}}})


def _spans(out: dict) -> list[tuple[int, int]]:
    return [(c["start_frame"], c["end_frame"]) for c in out["clips"]]


def test_a_missed_cut_splits_the_clip(tmp_path):
    path = tmp_path / "v.mp4"
    truth = synth.make_video(path, [(70, "moving"), (80, "pan_left")], size=(192, 144))
    (cut,) = truth
    assert _spans(analyse(path, _config(purity=False))) == [(0, 150)]  # the detector really misses it
    out = analyse(path, _config())
    assert _spans(out) == [(0, cut - 2), (cut + 2, 150)]  # cut out with clips.trim_frames either side
    assert_clean(out["clips"], truth)
    assert not any(c["reject_reasons"] for c in out["clips"])
    # the shot list holds what the purity check found
    assert out["shots"] == [{"start_frame": 0, "end_frame": cut}, {"start_frame": cut, "end_frame": 150}]
    assert [(t["start_frame"], t["end_frame"], t["kind"]) for t in out["transitions"]] == [(cut, cut, "cut")]
    assert 0 < out["transitions"][0]["score"] <= 1


def test_a_clip_with_nothing_clean_enough_left_is_rejected(tmp_path):
    path = tmp_path / "v.mp4"
    (cut,) = synth.make_video(path, [(45, "moving"), (45, "pan_right")], size=(192, 144))
    out = analyse(path, _config())
    (clip,) = out["clips"]  # both sides are shorter than clips.min_s (2 s): one rejected clip
    assert (clip["start_frame"], clip["end_frame"]) == (0, 90)
    assert reason_keys(clip["reject_reasons"]) == [CONTAINS_TRANSITION]
    detail = clip["reject_reasons"][0]["detail"]
    assert detail.startswith(f"cut at frame {cut}:") and "clips.min_s" in detail, detail
    # refilter keeps the decision: no threshold brings such a clip back
    row = {"reject_reasons": clip["reject_reasons"], "flag_reasons": [], "caption_check": None, "caption_check_reason": None,
           "clip_sim_mean": None, "clip_sim_min": None, **{k: clip[k] for k in ("motion_score", "sharpness", "brightness",
                                                                                 "black_fraction", "frozen_fraction")}}
    assert reason_keys(decide(row, PipelineConfig.model_validate({"filter": {k: None for k in (
        "min_motion", "min_sharpness", "min_brightness", "max_brightness", "max_black_fraction", "max_frozen_fraction")}}))
        ["reject_reasons"]) == [CONTAINS_TRANSITION]


def test_clean_high_motion_and_camera_moves_are_kept(tmp_path):
    path = tmp_path / "v.mp4"
    synth.make_video(path, [(120, "moving")], size=(192, 144))
    path2 = tmp_path / "w.mp4"
    synth.make_video(path2, [(120, "pan_left")], size=(192, 144))
    for p in (path, path2):
        on, off = analyse(p, _config()), analyse(p, _config(purity=False))
        assert _spans(on) == _spans(off) and not any(c["reject_reasons"] for c in on["clips"])


def _frames(n: int, seed: int, jitter: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (27, 48, 3), dtype=np.uint8), (192, 108), interpolation=cv2.INTER_CUBIC)
    return [np.clip(base.astype(int) + rng.integers(-jitter, jitter + 1, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def _check(frames: list[np.ndarray]) -> PurityCheck:
    pc = PurityCheck()
    for i, f in enumerate(frames):
        pc.consume(i, f)
    return pc


def test_a_flash_is_not_a_transition_but_a_cut_is():
    frames = _frames(120, 1)
    for k in (50, 51):  # two overexposed frames, then the same picture
        frames[k] = np.clip(frames[k].astype(int) * 1.4 + 90, 0, 255).astype(np.uint8)
    assert _check(frames).find(0, 120) == []
    cut = _frames(60, 1) + _frames(60, 2)
    (f,) = _check(cut).find(0, 120)
    assert f.boundary.start == f.boundary.end == 60 and not f.edge
    assert pieces(0, 120, [f], 2) == [(0, 58), (62, 120)]


def test_memory_is_bounded_by_the_clips_still_to_come():
    pc = PurityCheck()
    for i, f in enumerate(_frames(600, 3)):
        pc.consume(i, f)
        pc.drop_before(i - 100)
    assert len(pc) <= 100 + 17 + 1


@pytest.mark.shared
def test_real_cut_free_footage_is_left_alone(shared_dir):
    """High motion (cockatoo, fire), hand-held (box), locked-off with walkers (vtest): nothing found, nothing cut."""
    videos = shared_dir / "media/videos"
    for name in ("cockatoo.mp4", "fire2.mp4", "box.mp4", "vtest.avi"):
        on = analyse(videos / name, _config(min_s=1.0))
        off = analyse(videos / name, _config(purity=False, min_s=1.0))
        assert _spans(on) == _spans(off), name
        assert not any(c["reject_reasons"] for c in on["clips"]) and on["transitions"] == [], name


def test_purity_settings_are_split_settings():
    """They decide where clips start and end: a change needs a new OUTPUT and changes clip ids, never a refilter."""
    from curate.config_diff import differences

    a, b = PipelineConfig(), PipelineConfig.model_validate({"clips": {"purity": {"ratio": 6.0}}})
    assert [(d.path, d.kind) for d in differences(a.model_dump(mode="json"), b.model_dump(mode="json"))] == [("clips.purity.ratio", "split")]
    assert a.split_settings() != b.split_settings()
    with pytest.raises(ValueError, match="ratio"):
        PipelineConfig.model_validate({"clips": {"purity": {"ratio": 0.5}}})


@pytest.mark.shared
@pytest.mark.parametrize("a,b,kind,frames", [("chaplin.mp4", "cup.mp4", "wipeleft", 9), ("box.mp4", "vtest.avi", "slideup", 16),
                                             ("vtest.avi", "flipping_a_pancake.mkv", "circleopen", 12),
                                             ("cup.mp4", "chaplin.mp4", "diagtl", 20)])
def test_a_missed_wipe_or_slide_is_cut_out(shared_dir, tmp_path, a, b, kind, frames):
    """A wipe, slide or iris between real shots: no single frame's change stands out, the spatial test finds it."""
    comp = concat_with_transitions(tmp_path / "c.mp4", [Segment(a, 1.0, 100), Segment(b, 1.0, 100)], [(kind, frames)],
                                   shared_dir / "media/videos", size=(192, 108))
    (span,) = comp.spans
    assert clips_with_boundary(_spans(analyse(comp.path, _config(purity=False))), [], [span]) == 1  # the detector misses it
    out = analyse(comp.path, _config())
    assert_clean(out["clips"], spans=[span])
    assert len(out["clips"]) == 2 and not any(c["reject_reasons"] for c in out["clips"])  # both sides stay clips


@pytest.mark.shared
def test_a_soft_wipe_only_the_palette_windows_see_is_cut_out_with_its_faint_start(shared_dir, tmp_path):
    """Seed 735: a 20-frame smooth wipe up out of the hand-held cup into the moving cockatoo. Only the palette windows
    see it, over frames 74-81; its first frames blend in no more than the cup moves. Cut out with a quarter of that
    length more, the clip before it kept 3 of its frames; with its length more (at most ``SOFT_FAINT``), none."""
    segs = [Segment("cup.mp4", 2.58, 87, whip=(39, 7, 1)), Segment("cockatoo.mp4", 1.33, 70, whip=(30, 9, 1))]
    comp = concat_with_transitions(tmp_path / "c.mp4", segs, [("smoothup", 20)], shared_dir / "media/videos")
    (span,) = comp.spans
    assert clips_with_boundary(_spans(analyse(comp.path, _config(purity=False))), [], [span]) == 1  # the detector misses it
    out = analyse(comp.path, _config())
    assert_clean(out["clips"], spans=[span])
    assert any(not c["reject_reasons"] for c in out["clips"]), _spans(out)


@pytest.mark.shared
def test_a_missed_dissolve_between_two_moving_shots_is_cut_out(shared_dir, tmp_path):
    """Seed 699: a 7-frame dissolve from a hand-held close-up of an arm into the cockatoo's beak. Both shots move as
    much as the dissolve changes, so no frame stands out; the palette windows find it, but only 0.43 of the pixels
    change colour bins (under ``NEW_PALETTE``, which a turning bird reaches). Local motion does not explain its frames,
    and that is enough."""
    comp = concat_with_transitions(tmp_path / "c.mp4", [Segment("flipping_a_pancake.mkv", 6.65, 89), Segment("cockatoo.mp4", 2.86, 78)],
                                   [("dissolve", 7)], shared_dir / "media/videos")
    (span,) = comp.spans
    assert clips_with_boundary(_spans(analyse(comp.path, _config(purity=False))), [], [span]) == 1  # the detector misses it
    out = analyse(comp.path, _config())
    assert_clean(out["clips"], spans=[span])
    assert any(not c["reject_reasons"] for c in out["clips"]), _spans(out)
