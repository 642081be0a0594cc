"""Typed config of the model stages (CLIP, aesthetic head, captions, caption check).

Each class maps one section of a pipeline YAML; the lead's ``PipelineConfig``
holds them (``models``, ``clip``, ``aesthetic``, ``caption``, ``caption_check``,
``embedding``). Like the rest of the config, unknown keys are errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Precision = Literal["auto", "fp32", "fp16", "bf16"]

LAION_VIT_B_32_HEAD = "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_b_32_linear.pth"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=(), allow_inf_nan=False)


class ModelsConfig(_Strict):
    """Where weights live for runs without network access.

    ``dir`` is what ``curate models download PIPELINE.yaml --output DIR`` filled; it
    is used as the download cache of every model, overriding their ``cache_dir``.
    Offline mode is on when ``offline`` is true or ``HF_HUB_OFFLINE=1``.
    """

    dir: Path | None = None
    offline: bool = False


DEFAULT_MODELS = ModelsConfig()


class ClipModelConfig(_Strict):
    """An open_clip model, named the way open_clip names it.

    ``model``: an architecture (``ViT-B-32``), ``hf-hub:org/repo`` (config and
    weights from a hub repo) or ``local-dir:/path`` (``open_clip_config.json`` and
    weights in a folder). ``pretrained`` (architectures only): an open_clip tag
    (``openai``, ``laion2b_s34b_b79k``), a local checkpoint file, or
    ``hf-hub:org/repo/file.safetensors``. ``random_init: true`` builds the model
    with random weights and marks its output as such (tests, benchmarks only).
    """

    model: str = "ViT-B-32"
    pretrained: str | None = "openai"
    cache_dir: Path | None = None
    random_init: bool = False
    precision: Precision = "auto"
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda or cuda:N")
    batch_size: int = Field(64, ge=1, description="frames per forward pass")

    @model_validator(mode="after")
    def _source(self) -> ClipModelConfig:
        schema = self.model.startswith(("hf-hub:", "local-dir:"))
        explicit = self.pretrained if "pretrained" in self.model_fields_set else None
        if self.random_init and explicit:
            raise ValueError("clip: random_init: true builds random weights; remove pretrained (or set it to null)")
        if schema and explicit:
            raise ValueError(f"clip: model {self.model!r} carries its own weights; remove pretrained")
        if not (self.random_init or schema or self.pretrained):
            raise ValueError("clip: set pretrained (tag, checkpoint path or hf-hub:repo/file), or random_init: true")
        return self

    @property
    def weights(self) -> str | None:
        """The ``pretrained`` that applies (none for schema models and random init)."""
        if self.random_init or self.model.startswith(("hf-hub:", "local-dir:")):
            return None
        return self.pretrained


class AestheticConfig(_Strict):
    """A LAION aesthetic head (linear or improved-predictor MLP) on CLIP image embeddings.

    ``head``: a local ``.pth``/``.safetensors`` state dict or an https URL
    (downloaded into the model cache). It must match the CLIP model's embedding size.
    """

    head: str = LAION_VIT_B_32_HEAD
    aggregate: Literal["mean", "min"] = "mean"


class CaptionConfig(_Strict):
    """Which captioner writes ``caption`` and how its output is checked for sanity."""

    kind: Literal["source", "clip-retrieval", "transformers"] = "source"
    # transformers: a hub id or a local directory saved with save_pretrained.
    model: str | None = None
    revision: str | None = None
    cache_dir: Path | None = None
    trust_remote_code: bool = False
    prompt: str | None = None
    num_frames: int = Field(1, ge=1, description="frames given to video models; image models get the middle one")
    max_new_tokens: int = Field(40, ge=1)
    batch_size: int = Field(8, ge=1, description="clips per generate() call")
    precision: Precision = "auto"
    device: str = "auto"
    # clip-retrieval: a YAML vocabulary; None uses the one shipped in curate/vocab/.
    vocab: Path | None = None
    # Keep captions already carried from the input manifest or sidecars.
    keep_existing: bool = True
    # Hygiene: a caption outside these bounds or seen on this many videos is flagged.
    min_words: int = Field(3, ge=1)
    max_words: int = Field(120, ge=1)
    max_same_caption_videos: int = Field(5, ge=2)

    @model_validator(mode="after")
    def _model(self) -> CaptionConfig:
        if self.kind == "transformers" and not self.model:
            raise ValueError("caption: kind transformers needs model (a hub id or a local directory)")
        if self.max_words < self.min_words:
            raise ValueError("caption: max_words must be >= min_words")
        return self


class CaptionCheckConfig(_Strict):
    """Bands on the caption-to-frame CLIP cosine similarity (model dependent).

    ``statistic`` >= ``pass_min`` passes, < ``reject_below`` rejects, anything
    between is flagged for review. Defaults suit OpenAI ViT-B/32 (matching
    captions score ~0.25-0.35); SigLIP and other models need their own bands.
    """

    pass_min: float = Field(0.22, ge=-1, le=1)
    reject_below: float = Field(0.15, ge=-1, le=1)
    statistic: Literal["mean", "min"] = "mean"

    @model_validator(mode="after")
    def _order(self) -> CaptionCheckConfig:
        if self.reject_below > self.pass_min:
            raise ValueError(f"caption_check: reject_below ({self.reject_below}) must be <= pass_min ({self.pass_min})")
        return self


class EmbeddingConfig(_Strict):
    """How the clip embedding column is stored."""

    dtype: Literal["float16", "float32"] = "float16"


VaeClass = Literal["AutoencoderKL", "AutoencoderKLCogVideoX", "AutoencoderKLWan", "AutoencoderKLLTXVideo",
                   "AutoencoderKLHunyuanVideo"]


class VaeConfig(_Strict):
    """A diffusers VAE: its class and where its weights are.

    ``id`` names the latents in the output (``ClipDataset(latents=ID)``).
    ``model``: a local directory saved with ``save_pretrained`` or a hub id
    (with ``subfolder: vae`` for a whole pipeline repo). ``kind`` is the diffusers
    class: ``AutoencoderKL`` encodes each frame on its own, the others encode the
    clip as a video. ``random_init: true`` builds the VAE from its config with
    random weights and marks the latents so (tests, benchmarks only).
    """

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: VaeClass = "AutoencoderKL"
    model: str
    subfolder: str | None = None
    revision: str | None = None
    cache_dir: Path | None = None
    random_init: bool = False


TextEncoderClass = Literal["T5EncoderModel", "UMT5EncoderModel", "CLIPTextModel", "CLIPTextModelWithProjection"]


class TextEncoderConfig(_Strict):
    """A ``transformers`` text encoder and its tokenizer: class and where the weights are.

    ``id`` names the embeddings in the output (``ClipDataset(text_embeddings=ID)``).
    ``model``: a local directory saved with ``save_pretrained`` (model and tokenizer)
    or a hub id; ``subfolder``/``tokenizer_subfolder`` for a whole pipeline repo
    (e.g. ``text_encoder`` and ``tokenizer``). ``random_init: true`` builds the
    encoder from its config with random weights and marks the output so (tests only).
    """

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: TextEncoderClass = "T5EncoderModel"
    model: str
    subfolder: str | None = None
    tokenizer_subfolder: str | None = Field(None, description="where the tokenizer is; defaults to subfolder")
    revision: str | None = None
    cache_dir: Path | None = None
    random_init: bool = False
