"""Typed pipeline configuration, validated once at the edge.

A pipeline YAML maps onto :class:`PipelineConfig`. Unknown keys are errors
(``extra="forbid"``) so a typo fails before any work with the field's path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curate.models.settings import AestheticConfig, CaptionCheckConfig, CaptionConfig, ClipModelConfig, EmbeddingConfig, ModelsConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeConfig(_Strict):
    """Which sources qualify at all (a failing one is ``rejected``)."""

    min_duration_s: float = Field(1.0, ge=0)
    min_width: int = Field(64, ge=1)
    min_height: int = Field(64, ge=1)


class DetectorConfig(_Strict):
    """Shot detector and its parameters (they affect clip ids)."""

    kind: Literal["adaptive", "content", "threshold", "transnetv2"] = "adaptive"
    # Passed to the detector's constructor (PySceneDetect names, e.g. ``threshold``,
    # ``adaptive_threshold``, ``min_scene_len``; for transnetv2 ``threshold``).
    params: dict[str, Any] = Field(default_factory=dict)
    # Also run PySceneDetect's threshold detector to catch fades to black.
    fades: bool = True


class ClipsConfig(_Strict):
    """How shots become clips (these settings affect clip ids)."""

    min_s: float = Field(2.0, gt=0)
    max_s: float = Field(10.0, gt=0)
    # Frames dropped at each shot boundary so no clip holds transition frames.
    trim_frames: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _order(self) -> "ClipsConfig":
        if self.max_s < self.min_s:
            raise ValueError(f"clips.max_s ({self.max_s}) must be >= clips.min_s ({self.min_s})")
        return self


class AnalysisConfig(_Strict):
    """The single decode pass: sizes of the small frames its consumers see."""

    width: int = Field(192, ge=32, description="shot-detector frame width (px)")
    motion_width: int = Field(160, ge=32, description="optical-flow width (px); motion is px/frame at this width")
    motion_every: int = Field(2, ge=1, description="flow on every k-th frame")
    sample_frames: int = Field(3, ge=1, description="frames sampled per clip for scorers/CLIP")
    sample_width: int = Field(256, ge=32)
    thumbnail_width: int = Field(192, ge=32)


class FilterConfig(_Strict):
    """Thresholds; ``None`` disables a check. Changing them keeps clip ids."""

    min_motion: float | None = 0.15
    max_motion: float | None = None
    min_sharpness: float | None = 5.0
    min_brightness: float | None = 0.06
    max_brightness: float | None = 0.97
    max_black_fraction: float | None = 0.5
    max_frozen_fraction: float | None = 0.9
    # LAION aesthetic score (needs the ``aesthetic`` section).
    min_aesthetic: float | None = None
    require_caption: bool = False


class EncodeConfig(_Strict):
    """How kept clips are stored."""

    mode: Literal["bytes", "reference"] = "bytes"
    max_height: int | None = Field(720, ge=16)
    max_fps: float | None = Field(None, gt=0)
    crf: int = Field(23, ge=0, le=51)
    preset: str = "veryfast"


class DedupConfig(_Strict):
    """Run-wide duplicate removal, decided after every clip is committed (see ``curate/dedup.py``).

    Clips are visited best first (accepted before flagged, then ``score``
    descending, then ``clip_id``); a clip is dropped as a duplicate of the
    first kept clip whose pHash is within ``phash_max_distance`` bits (exact
    duplicate) or whose embedding cosine is at least ``cosine_threshold``
    (near duplicate; needs the ``clip`` section). ``None`` disables a test.
    Changing these keeps clip ids.
    """

    enabled: bool = True
    phash_max_distance: int | None = Field(4, ge=0, le=64)
    cosine_threshold: float | None = Field(0.95, gt=-1, le=1)
    score: str = Field("aesthetic_score", description="float clip column ranking duplicates: the highest is kept")

    @field_validator("score")
    @classmethod
    def _float_column(cls, v: str) -> str:
        import pyarrow as pa

        from curate.schema import load_schema

        floats = [f.name for f in load_schema("clip") if pa.types.is_floating(f.type)]
        if v not in floats:
            raise ValueError(f"dedup.score must be a float clip column, one of {floats}")
        return v


class OutputConfig(_Strict):
    shard_size_mb: float = Field(256.0, gt=0)
    row_group_rows: int = Field(64, ge=1)


class LimitsConfig(_Strict):
    video_timeout_s: float = Field(600.0, gt=0, description="per video and stage; a hang becomes `failed`")


class PipelineConfig(_Strict):
    """A whole pipeline definition (one YAML file in ``pipelines/``)."""

    name: str = "pipeline"
    description: str = ""
    probe: ProbeConfig = ProbeConfig()
    detector: DetectorConfig = DetectorConfig()
    clips: ClipsConfig = ClipsConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    filter: FilterConfig = FilterConfig()
    encode: EncodeConfig = EncodeConfig()
    output: OutputConfig = OutputConfig()
    limits: LimitsConfig = LimitsConfig()
    dedup: DedupConfig = DedupConfig()
    # Model stages; a missing section means the stage is absent (``model-free.yaml``).
    models: ModelsConfig = ModelsConfig()
    clip: ClipModelConfig | None = None
    aesthetic: AestheticConfig | None = None
    caption: CaptionConfig | None = None
    caption_check: CaptionCheckConfig | None = None
    embedding: EmbeddingConfig = EmbeddingConfig()
    # Per-stage overrides of declared resources, e.g. {"analyse": {"cpus": 0.5}}.
    resources: dict[str, dict[str, float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs(self) -> "PipelineConfig":
        """Sections that only work with another one present, named before any work."""
        needs_clip = [name for name, on in (("aesthetic", self.aesthetic), ("caption_check", self.caption_check),
                                            ("caption.kind clip-retrieval", self.caption and self.caption.kind == "clip-retrieval"))
                      if on]
        if needs_clip and self.clip is None:
            raise ValueError(f"{', '.join(needs_clip)} need(s) the clip section (the CLIP model whose embeddings they read)")
        if self.filter.min_aesthetic is not None and self.aesthetic is None:
            raise ValueError("filter.min_aesthetic needs the aesthetic section")
        return self

    @property
    def random_init(self) -> bool:
        """Whether any model of this pipeline runs on random weights (its output is marked so)."""
        return bool(self.clip and self.clip.random_init)

    def split_settings(self) -> dict[str, Any]:
        """Settings that decide where clips start and end (hence clip ids)."""
        return {"detector": self.detector.model_dump(), "clips": self.clips.model_dump(), "analysis_width": self.analysis.width}

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


class ConfigError(ValueError):
    """A pipeline file that cannot be used; the message names the field."""


def _format_error(path: str, err: ValidationError) -> str:
    lines = [f"invalid pipeline {path}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML, raising :class:`ConfigError` naming the field."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pipeline file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid pipeline {p}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"invalid pipeline {p}: top level must be a mapping, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(str(p), e)) from e
