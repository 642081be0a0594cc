"""What decides a video's or a clip's fate: thresholds in, reasons out.

Every check that drops or flags something lives here, as a pure function of
stored values and a config section, so the stages that apply them during a
run (probe, analyse, filter, caption_check) and the passes that apply them
again afterwards (``curate refilter``, the report's threshold lines) share
one implementation and never import a stage.

Each check returns :func:`~curate.records.reason` dicts: a ``key`` that is
counted (the threshold's config name, ``min_motion``) and a ``detail`` for
people (``motion_score 0.02 < min_motion 0.15``). Nothing parses a detail.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

from curate.config import FilterConfig, PipelineConfig, ProbeConfig
from curate.media.geometry import rotated
from curate.models.settings import CaptionCheckConfig
from curate.records import Reason, Record, reason

PASS, FLAG, REJECT = "pass", "flag", "reject"  # caption-check outcomes

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
    "max_text_area": ("text_area_max", operator.le, ">"),
}
REQUIRE_CAPTION = "require_caption"
# A clip the purity check (``clips.purity``) found a transition in and nothing clean enough of: decided when
# the clips were cut, so no threshold brings it back (refilter keeps it).
CONTAINS_TRANSITION = "contains_transition"


def filter_reasons(clip: Record, cfg: FilterConfig) -> list[Reason]:
    """Every threshold of ``cfg`` that ``clip`` fails; the key is the threshold's name."""
    reasons = []
    for name, (column, keep, symbol) in CHECKS.items():
        threshold = getattr(cfg, name)
        value = clip.get(column)
        if threshold is None:
            continue
        if value is None:
            reasons.append(reason(name, f"{column} missing for {name}"))
        elif not math.isfinite(float(value)):  # never "nan < min_motion": say it could not be measured
            reasons.append(reason(name, f"{column} not measurable ({float(value)}) for {name}"))
        elif not keep(float(value), float(threshold)):
            reasons.append(reason(name, f"{column} {float(value):.4g} {symbol} {name} {threshold:g}"))
    if cfg.require_caption and not (clip.get("caption") or "").strip():
        reasons.append(reason(REQUIRE_CAPTION, "caption missing for require_caption"))
    return reasons


def transition_rejection(detail: str) -> Reason:
    """The reason of a clip that holds a transition the shot detector missed (``detail`` names its frames)."""
    return reason(CONTAINS_TRANSITION, detail)


def caption_verdict(sim_mean: float, sim_min: float, cfg: CaptionCheckConfig) -> tuple[str, Reason | None]:
    """``(outcome, reason)`` for one clip's caption-to-frame similarities: pass, flag or reject.

    The reason's key is the band it fell below (``reject_below`` or ``pass_min``).
    """
    name, value = f"clip_sim_{cfg.statistic}", sim_mean if cfg.statistic == "mean" else sim_min
    if value < cfg.reject_below:
        return REJECT, reason("reject_below", f"{name} {value:.3f} < reject_below {cfg.reject_below:g}")
    if value < cfg.pass_min:
        return FLAG, reason("pass_min", f"{name} {value:.3f} < pass_min {cfg.pass_min:g}")
    return PASS, None


def source_rejection(info: dict[str, Any], cfg: ProbeConfig) -> Reason | None:
    """Why a probed source does not qualify (no video stream, too small when displayed), or ``None``."""
    if not info["has_video"]:
        return reason("no_video_stream", "no video stream" + (" (audio only)" if info["has_audio"] else ""))
    w, h = rotated(info["width"], info["height"], info["rotation"])
    if w < cfg.min_width or h < cfg.min_height:
        return reason("min_width" if w < cfg.min_width else "min_height",
                      f"too small: {w}x{h} < min {cfg.min_width}x{cfg.min_height}")
    return None


def duration_rejection(duration_s: float, cfg: ProbeConfig) -> Reason | None:
    """Why a source whose decoded span is ``duration_s`` is too short, or ``None``."""
    if duration_s < cfg.min_duration_s:
        return reason("min_duration_s", f"too short: {duration_s:.2f} s < min {cfg.min_duration_s:g} s")
    return None


def decide(row: dict[str, Any], config: PipelineConfig) -> dict[str, Any]:
    """A committed clip's decision before dedup under ``config``, from its stored columns.

    Filter thresholds, then the caption check's bands on the stored raw
    similarity. Flags other than the caption check's own (caption hygiene)
    and a stored ``contains_transition`` (decided when the clips were cut)
    do not depend on thresholds and are kept.
    """
    split = [r for r in row.get("reject_reasons") or [] if r["key"] == CONTAINS_TRANSITION]
    reject = split + filter_reasons(row, config.filter)
    outcome, detail = row["caption_check"], row["caption_check_reason"]
    own = {"pass_min"} if outcome == FLAG else set()
    flags = [f for f in row["flag_reasons"] or [] if f["key"] not in own]
    if config.caption_check is not None and row["clip_sim_mean"] is not None:
        outcome, why = caption_verdict(row["clip_sim_mean"], row["clip_sim_min"], config.caption_check)
        detail = why["detail"] if why else None
        if outcome == FLAG:
            flags.append(why)
        elif outcome == REJECT:
            reject.append(why)
    return {"reject_reasons": reject, "flag_reasons": flags, "caption_check": outcome, "caption_check_reason": detail}


def thresholds_by_column(config: dict[str, Any]) -> dict[str, list[tuple[str, float]]]:
    """Score column -> the ``(name, value)`` thresholds a pipeline (its config as a dict) applies to it."""
    out: dict[str, list[tuple[str, float]]] = {}
    for name, (column, _, _) in CHECKS.items():
        value = (config.get("filter") or {}).get(name)
        if value is not None:
            out.setdefault(column, []).append((name, float(value)))
    cc = config.get("caption_check")
    if cc:
        for name in ("reject_below", "pass_min"):
            out.setdefault(f"clip_sim_{cc.get('statistic', 'mean')}", []).append((name, float(cc[name])))
    return out
