"""Build a pipeline's stage list from its config.

A stage is one class in ``curate/stages/`` and one section of the pipeline
YAML: :data:`STAGES` lists the classes in the order they run, and each
class's ``from_config`` picks its own section(s) (``None`` when the pipeline
has none, e.g. the model stages of ``model-free.yaml``). Resource defaults
(``cpus``, ``gpus``, ``batch_size``, ``gpu_batch_size``) are fields of each stage class;
``resources:`` in the YAML overrides them per stage.
"""

from __future__ import annotations

import dataclasses

from curate.config import ConfigError, PipelineConfig
from curate.stage import Stage


def stage_classes() -> tuple[type[Stage], ...]:
    """Every stage class in the order :func:`build_stages` runs them.

    probe → analyse → [text → clip_embed → aesthetic → caption] → filter →
    [caption_check] → encode → [latents]. Model stages score every clip before the
    filter, so the report shows full distributions and ``curate refilter``
    can move any threshold without re-running a model; the caption check
    comes after the filter so its rejections join the filter's. Encode stores
    every clip without a reject reason, flagged ones too (they go to
    ``review/`` with their bytes); latents (with a ``latents:`` section) encode
    the accepted clips' bucket pixels that encode took from its own decode.
    """
    from curate.stages.aesthetic import AestheticStage
    from curate.stages.analyse import AnalyseStage
    from curate.stages.caption import CaptionStage
    from curate.stages.caption_check import CaptionCheckStage
    from curate.stages.clip_embed import ClipEmbedStage
    from curate.stages.encode import EncodeStage
    from curate.stages.filter import FilterStage
    from curate.stages.latents import LatentsStage
    from curate.stages.probe import ProbeStage
    from curate.stages.text import TextStage

    return (ProbeStage, AnalyseStage, TextStage, ClipEmbedStage, AestheticStage, CaptionStage, FilterStage, CaptionCheckStage, EncodeStage,
            LatentsStage)


# Every stage name in the order build_stages runs them (timings are shown in this order).
STAGE_ORDER = ("probe", "analyse", "text", "clip_embed", "aesthetic", "caption", "filter", "caption_check", "encode", "latents")


def in_pipeline_order(names: list[str] | dict[str, object]) -> list[str]:
    """Stage names in :data:`STAGE_ORDER`; unknown ones (other passes) after them, by name."""
    return sorted(names, key=lambda n: (STAGE_ORDER.index(n) if n in STAGE_ORDER else len(STAGE_ORDER), n))


# What ``resources.<stage>`` may set, and its type (YAML numbers arrive as floats).
# ``piece_mb`` only where a stage streams clip pieces (analyse: sampled frames, encode: MP4): what one piece holds, its memory bound.
RESOURCE_KEYS = {"cpus": float, "gpus": float, "batch_size": int, "gpu_batch_size": int, "piece_mb": float}


def build_stages(config: PipelineConfig) -> list[Stage]:
    """The stages ``config`` has, in order, with its per-stage resource overrides applied.

    Stages that open the source (probe, analyse, encode) run guarded with the
    per-video time limit, so a hang or native crash fails that video, not the run.
    """
    stages = [s for cls in stage_classes() if (s := cls.from_config(config)) is not None]
    names = {s.name for s in stages}
    unknown = set(config.resources) - names
    if unknown:
        raise ConfigError(f"resources: unknown stage(s) {sorted(unknown)}; stages are {sorted(names)}")
    out = []
    for s in stages:
        override = config.resources.get(s.name, {})
        bad = set(override) - {k for k in RESOURCE_KEYS if hasattr(s, k)}
        if bad:
            raise ConfigError(f"resources.{s.name}: unknown key(s) {sorted(bad)}; allowed: {', '.join(k for k in RESOURCE_KEYS if hasattr(s, k))}")
        out.append(dataclasses.replace(s, **{k: RESOURCE_KEYS[k](v) for k, v in override.items()}) if override else s)
    return out
