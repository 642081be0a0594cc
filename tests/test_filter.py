from __future__ import annotations

from curate.config import FilterConfig, PipelineConfig
from curate.stages.filter import FilterStage, reject_reasons

GOOD = dict(motion_score=1.0, sharpness=50.0, brightness=0.5, black_fraction=0.0, frozen_fraction=0.0, caption="a dog")


def test_good_clip_passes():
    assert reject_reasons(GOOD, FilterConfig()) == []


def test_every_failing_threshold_is_reported():
    clip = dict(GOOD, motion_score=0.01, brightness=0.01, black_fraction=0.9)
    reasons = reject_reasons(clip, FilterConfig())
    assert any(r.startswith("motion_score 0.01 < min_motion") for r in reasons)
    assert any("min_brightness" in r for r in reasons)
    assert any("max_black_fraction" in r for r in reasons)
    assert len(reasons) == 3


def test_disabled_checks_and_caption_requirement():
    cfg = FilterConfig(min_motion=None, require_caption=True)
    reasons = reject_reasons(dict(GOOD, motion_score=0.0, caption=" "), cfg)
    assert reasons == ["caption missing for require_caption"]


def test_stage_marks_clips_and_keeps_them():
    stage = FilterStage(config=PipelineConfig.model_validate({"filter": {"max_motion": 2.0}}))
    video = {"video_id": "v", "uri": "u", "status": "pending", "clips": [GOOD, dict(GOOD, motion_score=5.0)]}
    (out,) = stage.process([video])
    assert [bool(c["reject_reasons"]) for c in out["clips"]] == [False, True]
    assert out["clips"][1]["reject_reasons"] == ["motion_score 5 > max_motion 2"]
