"""Caption check: similarity bands and what the stage writes on each clip."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from curate.models.clip import shared_clip
from curate.models.settings import CaptionCheckConfig, ClipModelConfig
from curate.decisions import caption_verdict as judge
from curate.records import reason
from curate.stages.caption_check import CaptionCheckStage
from tests.models_fixtures import fake_video, tiny_clip  # noqa: F401


def test_bands():
    cfg = CaptionCheckConfig(pass_min=0.25, reject_below=0.15)
    assert judge(0.25, 0.0, cfg) == ("pass", None)
    assert judge(0.2, 0.0, cfg) == ("flag", reason("pass_min", "clip_sim_mean 0.200 < pass_min 0.25"))
    assert judge(0.15, 0.0, cfg)[0] == "flag"
    assert judge(0.1, 0.0, cfg) == ("reject", reason("reject_below", "clip_sim_mean 0.100 < reject_below 0.15"))
    by_min = CaptionCheckConfig(pass_min=0.25, reject_below=0.15, statistic="min")
    assert judge(0.9, 0.1, by_min) == ("reject", reason("reject_below", "clip_sim_min 0.100 < reject_below 0.15"))
    with pytest.raises(ValidationError, match="reject_below"):
        CaptionCheckConfig(pass_min=0.1, reject_below=0.2)


def _towards(target: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """A unit vector at cosine ``cos`` to unit vector ``target``."""
    r = np.random.default_rng(seed).normal(size=target.shape)
    r -= (r @ target) * target
    r /= np.linalg.norm(r)
    return (cos * target + np.sqrt(1 - cos**2) * r).astype(np.float32)


def test_stage_outcomes_and_raw_similarity(tiny_clip):  # noqa: F811
    cfg = ClipModelConfig(model=tiny_clip["name"], pretrained=str(tiny_clip["checkpoint"]))
    stage = CaptionCheckStage(check=CaptionCheckConfig(pass_min=0.6, reject_below=0.2), clip=cfg)
    stage.setup()
    t = shared_clip(cfg).encode_texts(["a dog runs on the grass"])[0]
    video = fake_video("v", 5, 2)
    c = video["clips"]
    for clip in c:
        clip["caption"] = "a dog runs on the grass"
    c[0]["_frame_embeddings"] = np.stack([_towards(t, 0.9, 0), _towards(t, 0.7, 1)])
    c[1]["_frame_embeddings"] = np.stack([_towards(t, 0.5, 2), _towards(t, 0.3, 3)])
    c[2]["_frame_embeddings"] = np.stack([_towards(t, 0.1, 4), _towards(t, -0.1, 5)])
    c[2]["reject_reasons"] = [reason("min_motion", "motion_score 0.01 < min_motion 0.15")]
    c[3]["caption"] = None
    c[3]["_frame_embeddings"] = c[0]["_frame_embeddings"]
    out = stage.process([video])[0]["clips"]
    assert out[0]["caption_check"] == "pass" and out[0]["clip_sim_mean"] == pytest.approx(0.8, abs=1e-4)
    assert out[0]["clip_sim_min"] == pytest.approx(0.7, abs=1e-4) and not out[0].get("flag_reasons")
    assert out[1]["caption_check"] == "flag" and out[1]["flag_reasons"] == [reason("pass_min", "clip_sim_mean 0.400 < pass_min 0.6")]
    assert out[1]["caption_check_reason"] == out[1]["flag_reasons"][0]["detail"]
    assert out[2]["caption_check"] == "reject" and out[2]["reject_reasons"] == [
        reason("min_motion", "motion_score 0.01 < min_motion 0.15"), reason("reject_below", "clip_sim_mean 0.000 < reject_below 0.2")]
    assert out[3]["caption_check"] is None and out[3]["caption_check_reason"] == "no caption"
    assert out[4]["caption_check"] is None and out[4]["caption_check_reason"] == "no frame embeddings"
    assert "caption_check" not in video["clips"][0]  # input untouched
