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

from curate.models.settings import (
    AestheticConfig,
    CaptionCheckConfig,
    CaptionConfig,
    ClipModelConfig,
    EmbeddingConfig,
    ModelsConfig,
    Precision,
    TextEncoderConfig,
    VaeConfig,
)
from curate.review.settings import ReviewConfig


class _Strict(BaseModel):
    # allow_inf_nan=False: ``.inf`` or ``.nan`` in YAML is a typo, never a setting.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _ordered(low: float | None, high: float | None, low_name: str, high_name: str) -> None:
    if low is not None and high is not None and low > high:
        raise ValueError(f"{low_name} ({low}) must be <= {high_name} ({high})")


class ProbeConfig(_Strict):
    """Which sources qualify at all (a failing one is ``rejected``)."""

    min_duration_s: float = Field(1.0, ge=0)
    min_width: int = Field(64, ge=1)
    min_height: int = Field(64, ge=1)


class DetectorConfig(_Strict):
    """Shot detector and its parameters (they affect clip ids)."""

    kind: Literal["adaptive", "content", "threshold", "transnetv2", "combined"] = "adaptive"
    # Passed to the detector's constructor (PySceneDetect names, e.g. ``threshold``,
    # ``adaptive_threshold``, ``min_scene_len``; for transnetv2 ``threshold``).
    params: dict[str, Any] = Field(default_factory=dict)
    # Also run curate's GradualDetector (curate/analysis/shots.py), which reports fades
    # through black and dissolves as whole spans (PySceneDetect reports one cut in their middle).
    fades: bool = True
    # Where TransNetV2 runs (kinds transnetv2 and combined); not part of clip ids. ``auto`` is a
    # GPU where the worker sees one; on a Ray cluster with GPUs the analysis actors then ask
    # for a token share of one (curate/runners/pools.py), which places them on the GPU nodes.
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                        description="auto (CUDA when the worker sees one), cpu, cuda or cuda:N")

    @property
    def uses_transnet(self) -> bool:
        """TransNetV2 runs in the analysis pass (``transnetv2``, or ``combined`` unless ``transnet: never``)."""
        return self.kind == "transnetv2" or (self.kind == "combined" and self.params.get("transnet", "gated") != "never")

    @model_validator(mode="after")
    def _params_fit_the_detector(self) -> "DetectorConfig":
        """Unknown or invalid ``params`` fail at load, not in the first video's analysis."""
        from curate.analysis.detectors import check_detector_params

        check_detector_params(self.kind, self.params)
        return self


class PurityConfig(_Strict):
    """The clip purity check (``curate/analysis/purity.py``): a boundary the detector missed is cut out of the clip.

    A change into a frame stands out when it exceeds ``ratio`` times the
    clip's own level of frame-to-frame change and ``min_change`` grey levels
    (mean absolute RGB difference at 48x27); runs of such frames longer than
    ``max_frames`` are footage. A run whose two sides show different content
    (not a flash, a whip pan, an exposure change or local motion) is cut out
    with ``clips.trim_frames`` either side; what is left keeps its clips of at
    least ``clips.min_s``, and a clip with nothing left is rejected as
    ``contains_transition``. ``bench/bench_split.py`` measures what the
    defaults find and what they wrongly find (ratio 5: on development
    composites 4 also cut hand-held fast motion out of clean clips).
    """

    enabled: bool = True
    ratio: float = Field(5.0, gt=1)
    min_change: float = Field(6.0, ge=0)
    max_frames: int = Field(75, ge=1)


class ClipsConfig(_Strict):
    """How shots become clips (these settings affect clip ids)."""

    min_s: float = Field(2.0, gt=0)
    max_s: float = Field(10.0, gt=0)
    # Frames dropped at each shot boundary so no clip holds transition frames; counted in analysed
    # frames, so 50/60 fps video drops twice as many of its own (curate.analysis.clips.at_rate).
    trim_frames: int = Field(2, ge=0)
    # Second line of defence after splitting: every clip is checked for a transition the detector missed.
    purity: PurityConfig = PurityConfig()

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

    min_motion: float | None = Field(0.15, ge=0, description="px/frame at analysis.motion_width")
    max_motion: float | None = Field(None, ge=0)
    min_sharpness: float | None = Field(5.0, ge=0)
    min_brightness: float | None = Field(0.06, ge=0, le=1)
    max_brightness: float | None = Field(0.97, ge=0, le=1)
    max_black_fraction: float | None = Field(0.5, ge=0, le=1)
    max_frozen_fraction: float | None = Field(0.9, ge=0, le=1)
    # LAION aesthetic score (needs the ``aesthetic`` section).
    min_aesthetic: float | None = None
    # Burnt-in text (needs the ``text`` section): judged on ``text_area_max``, the worst sampled
    # frame, so subtitles or a title card on part of a clip drop it as surely as text throughout.
    max_text_area: float | None = Field(None, ge=0, le=1, description="fraction of frame area")
    require_caption: bool = False

    @model_validator(mode="after")
    def _ranges(self) -> "FilterConfig":
        _ordered(self.min_motion, self.max_motion, "filter.min_motion", "filter.max_motion")
        _ordered(self.min_brightness, self.max_brightness, "filter.min_brightness", "filter.max_brightness")
        return self


class TextConfig(_Strict):
    """The text-overlay score: PP-OCRv4 text detection on frames the decode pass sampled.

    ``size`` is the longer side of the detector's input. The decode pass
    samples each clip's frames for the detector at that size, straight from
    the decoded picture (the scorers' ``analysis.sample_width`` frames are
    those shrunk further), so no frame is scaled back up. Larger finds
    smaller text and costs more: ``bench/bench_text.py`` measures both
    against full-size detection. On the CPU, onnxruntime is fastest one
    frame per forward pass (``batch_frames`` 1: larger batches cost more per
    frame there).
    """

    size: int = Field(384, ge=64, le=4096, multiple_of=32, description="longer side of the detector input (px)")
    batch_frames: int = Field(1, ge=1, description="frames per forward pass")


class EncodeConfig(_Strict):
    """How kept clips are stored."""

    mode: Literal["bytes", "reference"] = "bytes"
    max_height: int | None = Field(720, ge=16)
    max_fps: float | None = Field(None, gt=0)
    crf: int = Field(23, ge=0, le=51)
    # libx264's presets (the encoder accepts nothing else).
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"] = "veryfast"


class DedupConfig(_Strict):
    """Run-wide duplicate removal, decided after every clip is committed (see ``curate/dedup.py``).

    Clips are visited best first (accepted before flagged, then ``score``
    descending, then ``clip_id``); a clip is dropped as a duplicate of the
    first kept clip whose pHash is within ``phash_max_distance`` bits (exact
    duplicate) or whose embedding cosine is at least ``cosine_threshold``
    (near duplicate; needs the ``clip`` section). ``None`` disables a test.
    Changing these keeps clip ids. ``engine`` is operational: both engines
    keep the same clips (``greedy`` on one machine, ``distributed`` as Ray
    tasks per connected component; ``auto`` picks by the number of candidates).
    """

    enabled: bool = True
    engine: Literal["auto", "greedy", "distributed"] = "auto"
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


class LatentBucketConfig(_Strict):
    """One pixel shape latents are computed at: ``num_frames`` x ``height`` x ``width`` (a loader bucket's shape)."""

    num_frames: int = Field(ge=1)
    height: int = Field(ge=8)
    width: int = Field(ge=8)

    @property
    def key(self) -> str:
        """How the ``bucket`` column names it: ``FRAMESxHEIGHTxWIDTH``."""
        return f"{self.num_frames}x{self.height}x{self.width}"


class LatentsConfig(_Strict):
    """VAE latents of the accepted clips, computed once per clip, VAE and bucket (``curate run``, ``curate latents``).

    A run computes them from the frames its encode step decodes; ``curate latents``
    from the stored clips, for clips that have none (accepted later, or an OUTPUT
    written without this section).

    Frames go through exactly what the loader does for a bucket
    (:class:`curate.data.BucketConfig` with ``fps``/``stride``/``allow_upscale``
    and :class:`curate.data.DecodeOptions` with ``resize``/``crop``/``temporal``/
    ``interpolation``); a clip gets latents for every listed bucket it fits.
    """

    vae: VaeConfig
    buckets: list[LatentBucketConfig] = Field(min_length=1)
    fps: float | None = Field(None, gt=0, description="frame rate clips are resampled to; null keeps each clip's")
    stride: int | None = Field(None, ge=1, description="take every stride-th frame instead (exclusive with fps)")
    allow_upscale: bool = True
    resize: Literal["cover", "stretch"] = "cover"
    crop: Literal["center"] = "center"
    temporal: Literal["start", "center"] = "center"
    interpolation: Literal["area", "bilinear", "bicubic", "fast_bilinear", "lanczos"] = "area"
    dtype: Literal["float16", "bfloat16"] = Field("float16", description="how the tensors are stored")
    posterior: bool = Field(False, description="also store the posterior log-variance, so trainers can sample")
    batch_size: int = Field(8, ge=1, description="clips per VAE forward pass")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda or cuda:N")
    precision: Precision = "auto"

    @model_validator(mode="after")
    def _frames(self) -> "LatentsConfig":
        if self.fps is not None and self.stride is not None:
            raise ValueError("latents: fps and stride are exclusive")
        keys = [b.key for b in self.buckets]
        if len(set(keys)) != len(keys):
            raise ValueError(f"latents.buckets lists a shape twice: {keys}")
        return self


class TextEmbeddingsConfig(_Strict):
    """Per-token embeddings of the accepted clips' final captions (``curate latents``).

    Recomputed only for clips whose caption changed since (review edits):
    rows carry the caption's hash. Captions are padded or truncated to ``max_length`` tokens.
    """

    encoder: TextEncoderConfig
    max_length: int = Field(128, ge=1, description="tokens per caption: padded or truncated to this")
    dtype: Literal["float16", "bfloat16"] = Field("float16", description="how the embeddings are stored")
    batch_size: int = Field(32, ge=1, description="captions per encoder forward pass")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda or cuda:N")
    precision: Precision = "auto"


class LimitsConfig(_Strict):
    video_timeout_s: float = Field(600.0, gt=0, description="per video and stage; a hang becomes `failed`")


class PipelineConfig(_Strict):
    """A whole pipeline definition (one YAML file in ``pipelines/``)."""

    name: str = "pipeline"
    description: str = ""
    probe: ProbeConfig = ProbeConfig()
    # a factory, not an instance: validating the default detector's params imports PySceneDetect (~0.3 CPU-s),
    # which every worker and guard child would pay at import even when the pipeline's detector needs none
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
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
    text: TextConfig | None = None  # the text-overlay score (text_area_max/mean, text_boxes)
    embedding: EmbeddingConfig = EmbeddingConfig()
    latents: LatentsConfig | None = None  # VAE latents of accepted clips; computed by `curate run` and `curate latents`
    text_embeddings: TextEmbeddingsConfig | None = None  # caption encoder outputs; computed by `curate latents`
    review: ReviewConfig = ReviewConfig()  # the annotator review queue (curate review serve); operational
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
        if self.filter.max_text_area is not None and self.text is None:
            raise ValueError("filter.max_text_area needs the text section")
        return self

    @property
    def random_init(self) -> bool:
        """Whether any model of this pipeline runs on random weights (its output is marked so)."""
        return bool(self.clip and self.clip.random_init)

    def split_settings(self) -> dict[str, Any]:
        """Settings that decide where clips start and end (hence clip ids)."""
        return split_settings(self.detector, self.clips, self.analysis)

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def split_settings(detector: DetectorConfig, clips: ClipsConfig, analysis: AnalysisConfig) -> dict[str, Any]:
    """Settings that decide where clips start and end (hence clip ids), from the sections that hold them."""
    return {"detector": detector.model_dump(exclude={"device"}), "clips": clips.model_dump(), "analysis_width": analysis.width}


class ConfigError(ValueError):
    """A pipeline file that cannot be used; the message names the field."""


def _format_error(path: str, err: ValidationError) -> str:
    lines = [f"invalid pipeline {path}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML, raising :class:`ConfigError` naming the field."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pipeline file not found: {p}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"invalid pipeline {p}: not valid YAML: {e}") from None
    if data is None:
        raise ConfigError(f"invalid pipeline {p}: the file is empty (start from pipelines/model-free.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"invalid pipeline {p}: top level must be a mapping, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(str(p), e)) from e
