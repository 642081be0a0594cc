"""Build a pipeline's stage list from its config."""

from __future__ import annotations

import dataclasses

from curate.config import ConfigError, PipelineConfig
from curate.stage import Stage

# GPU share each model stage asks Ray for where CUDA is present: fractions, so
# the CLIP stages and a captioner can share one GPU.
GPU_SHARE = {"clip_embed": 0.4, "caption": 0.4, "caption_check": 0.2}


# Every stage name in the order build_stages runs them (timings are shown in this order).
STAGE_ORDER = ("probe", "analyse", "clip_embed", "aesthetic", "caption", "filter", "caption_check", "encode")


def in_pipeline_order(names: list[str] | dict[str, object]) -> list[str]:
    """Stage names in :data:`STAGE_ORDER`; unknown ones (other passes) after them, by name."""
    return sorted(names, key=lambda n: (STAGE_ORDER.index(n) if n in STAGE_ORDER else len(STAGE_ORDER), n))


def _gpus(stage: str, device: str) -> float:
    if device == "cpu":
        return 0.0
    from curate.models.device import default_gpus

    return default_gpus(GPU_SHARE[stage])


def model_stages(config: PipelineConfig) -> tuple[list[Stage], list[Stage]]:
    """The model stages before and after the filter, for the sections ``config`` has.

    ``clip_embed`` embeds each sampled frame once; the aesthetic head, the
    clip-retrieval captioner and the caption check read those embeddings.
    Scores are computed for every clip (the filter comes after them) so the
    report shows their full distributions and ``curate refilter`` can move
    any threshold without re-running a model.
    """
    before: list[Stage] = []
    after: list[Stage] = []
    clip, models = config.clip, config.models
    if clip is None:
        return before, after
    from curate.stages.aesthetic import AestheticStage
    from curate.stages.caption import CaptionStage
    from curate.stages.caption_check import CaptionCheckStage
    from curate.stages.clip_embed import ClipEmbedStage

    before.append(ClipEmbedStage(clip=clip, models=models, embedding=config.embedding, cpus=1.0,
                                 gpus=_gpus("clip_embed", clip.device)))
    if config.aesthetic is not None:
        before.append(AestheticStage(aesthetic=config.aesthetic, clip=clip, models=models))
    cap = config.caption
    if cap is not None:
        device = cap.device if cap.kind == "transformers" else clip.device
        gpus = _gpus("caption", device) if cap.kind != "source" else 0.0
        before.append(CaptionStage(caption=cap, clip=clip, models=models, cpus=1.0 if cap.kind == "transformers" else 0.5,
                                   gpus=gpus))
    if config.caption_check is not None:
        after.append(CaptionCheckStage(check=config.caption_check, clip=clip, models=models, cpus=0.5,
                                       gpus=_gpus("caption_check", clip.device)))
    return before, after


def build_stages(config: PipelineConfig) -> list[Stage]:
    """The stages in order, with per-stage resource overrides applied.

    probe → analyse → [clip_embed → aesthetic → caption] → filter →
    [caption_check] → encode. Stages that open the source run guarded with the
    per-video time limit, so a hang or native crash fails that video, not the
    run. Encode stores every clip without a reject reason, flagged ones too
    (they go to ``review/`` with their bytes).
    """
    from curate.stages.analyse import AnalyseStage
    from curate.stages.encode import EncodeStage
    from curate.stages.filter import FilterStage
    from curate.stages.probe import ProbeStage

    timeout = config.limits.video_timeout_s
    before, after = model_stages(config)
    stages: list[Stage] = [
        ProbeStage(config=config, timeout_s=timeout, cpus=0.25),
        AnalyseStage(config=config, timeout_s=timeout, cpus=1.0),
        *before,
        FilterStage(filter=config.filter, cpus=0.1),
        *after,
        EncodeStage(config=config, timeout_s=timeout, cpus=1.0),
    ]
    names = {s.name for s in stages}
    unknown = set(config.resources) - names
    if unknown:
        raise ConfigError(f"resources: unknown stage(s) {sorted(unknown)}; stages are {sorted(names)}")
    out = []
    for s in stages:
        override = config.resources.get(s.name, {})
        bad = set(override) - {"cpus", "gpus", "batch_size"}
        if bad:
            raise ConfigError(f"resources.{s.name}: unknown key(s) {sorted(bad)}; allowed: cpus, gpus, batch_size")
        out.append(dataclasses.replace(s, **override) if override else s)
    return out
