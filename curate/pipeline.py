"""Build a pipeline's stage list from its config."""

from __future__ import annotations

import dataclasses

from curate.config import ConfigError, PipelineConfig
from curate.stage import Stage


def build_stages(config: PipelineConfig) -> list[Stage]:
    """The model-free stages in order, with per-stage resource overrides applied.

    Stages that open the source run guarded with the per-video time limit, so a
    hang or native crash fails that video, not the run.
    """
    from curate.stages.analyse import AnalyseStage
    from curate.stages.encode import EncodeStage
    from curate.stages.filter import FilterStage
    from curate.stages.probe import ProbeStage

    timeout = config.limits.video_timeout_s
    stages: list[Stage] = [
        ProbeStage(config=config, timeout_s=timeout, cpus=0.25),
        AnalyseStage(config=config, timeout_s=timeout, cpus=1.0),
        FilterStage(config=config, cpus=0.1),
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
