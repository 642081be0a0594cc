from __future__ import annotations

from curate.config import FilterConfig
from curate.decisions import filter_reasons as reject_reasons
from curate.records import reason
from curate.stages.filter import FilterStage

GOOD = dict(motion_score=1.0, sharpness=50.0, brightness=0.5, black_fraction=0.0, frozen_fraction=0.0, caption="a dog")


def test_good_clip_passes():
    assert reject_reasons(GOOD, FilterConfig()) == []


def test_every_failing_threshold_is_reported():
    clip = dict(GOOD, motion_score=0.01, brightness=0.01, black_fraction=0.9)
    reasons = reject_reasons(clip, FilterConfig())
    assert reasons[0] == reason("min_motion", "motion_score 0.01 < min_motion 0.15")
    assert [r["key"] for r in reasons] == ["min_motion", "min_brightness", "max_black_fraction"]


def test_disabled_checks_and_caption_requirement():
    cfg = FilterConfig(min_motion=None, require_caption=True)
    reasons = reject_reasons(dict(GOOD, motion_score=0.0, caption=" "), cfg)
    assert reasons == [reason("require_caption", "caption missing for require_caption")]


def test_stage_marks_clips_and_keeps_them():
    stage = FilterStage(filter=FilterConfig(max_motion=2.0))
    video = {"video_id": "v", "uri": "u", "status": "pending", "clips": [GOOD, dict(GOOD, motion_score=5.0)]}
    (out,) = stage.process([video])
    assert [bool(c["reject_reasons"]) for c in out["clips"]] == [False, True]
    assert out["clips"][1]["reject_reasons"] == [reason("max_motion", "motion_score 5 > max_motion 2")]
