"""Decide per clip from its scores; every dropped clip keeps all its reasons.

Reasons read ``"<column> <value> <op> <threshold name> <threshold>"`` (e.g.
``motion_score 0.02 < min_motion 0.15``) so the funnel can count them by
threshold name and a person can read them as they are. The stage adds its
reasons to those earlier stages gave (a model stage may already have
rejected a clip), so no reason is ever lost.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Callable

from curate.config import FilterConfig, PipelineConfig
from curate.records import Record
from curate.stage import VideoStage

# threshold name -> (clip column, comparison that must hold to keep the clip, symbol shown when it fails)
CHECKS: dict[str, tuple[str, Callable[[float, float], bool], str]] = {
    "min_motion": ("motion_score", operator.ge, "<"),
    "max_motion": ("motion_score", operator.le, ">"),
    "min_sharpness": ("sharpness", operator.ge, "<"),
    "min_brightness": ("brightness", operator.ge, "<"),
    "max_brightness": ("brightness", operator.le, ">"),
    "max_black_fraction": ("black_fraction", operator.le, ">"),
    "max_frozen_fraction": ("frozen_fraction", operator.le, ">"),
    "min_aesthetic": ("aesthetic_score", operator.ge, "<"),
}


def reject_reasons(clip: Record, cfg: FilterConfig) -> list[str]:
    """Every threshold of ``cfg`` that ``clip`` fails, as readable reasons."""
    reasons = []
    for name, (column, keep, symbol) in CHECKS.items():
        threshold = getattr(cfg, name)
        value = clip.get(column)
        if threshold is None:
            continue
        if value is None:
            reasons.append(f"{column} missing for {name}")
        elif not math.isfinite(float(value)):  # never "nan < min_motion": say it could not be measured
            reasons.append(f"{column} not measurable ({float(value)}) for {name}")
        elif not keep(float(value), float(threshold)):
            reasons.append(f"{column} {float(value):.4g} {symbol} {name} {threshold:g}")
    if cfg.require_caption and not (clip.get("caption") or "").strip():
        reasons.append("caption missing for require_caption")
    return reasons


@dataclass
class FilterStage(VideoStage):
    """Apply the pipeline's thresholds to every clip of a video."""

    name = "filter"
    config: PipelineConfig = PipelineConfig()
    cpus: float = 0.1

    def process_video(self, video: Record) -> Record:
        """Decide every clip; also drop its sampled frames, which no later stage reads.

        The frames are the bulk of a record (~0.3 MB a clip); carrying them on to
        the encode actor and the driver would only copy them twice more.
        """
        out = dict(video)
        out["clips"] = [
            {k: v for k, v in c.items() if k != "_frames"}
            | {"reject_reasons": [*(c.get("reject_reasons") or []), *reject_reasons(c, self.config.filter)]}
            for c in video.get("clips", [])
        ]
        return out
