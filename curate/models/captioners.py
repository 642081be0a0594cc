"""Caption generators behind one interface: ``caption(clips) -> list[str | None]``.

``clip-retrieval`` composes a caption from a replaceable vocabulary ranked by
CLIP similarity to the clip's frame embeddings (no extra model pass);
``transformers`` runs any Hugging Face image/video-to-text model through its
Auto classes. Captions carried with the input are in :mod:`curate.models.sidecars`.
Each captioner exposes ``model``, ``prompt`` and ``version`` for provenance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from curate.models.clip import ClipModel
from curate.models.device import pick_device, pick_precision, torch_dtype
from curate.models.hub import ModelUnavailable, cache_dir, hub_file, is_offline
from curate.models.settings import DEFAULT_MODELS, CaptionConfig, ModelsConfig

DEFAULT_VOCAB = Path(__file__).resolve().parent.parent / "vocab" / "caption_vocab.yaml"
_AUTO_CLASSES = ("AutoModelForImageTextToText", "AutoModelForVision2Seq", "AutoModelForCausalLM")


class RetrievalCaptioner:
    """Zero-shot captions: the best vocabulary entry per category plus the camera-motion phrase."""

    kind = "clip-retrieval"

    def __init__(self, clip: ClipModel, vocab_path: Path | None = None) -> None:
        path = Path(vocab_path or DEFAULT_VOCAB)
        raw = path.read_bytes()
        vocab = yaml.safe_load(raw) or {}
        self.order: list[str] = list(vocab.get("order") or [])
        missing = [c for c in self.order if not vocab.get(c)]
        if not self.order or missing:
            raise ValueError(f"caption vocabulary {path}: 'order' must list non-empty categories (missing or empty: {missing})")
        self.camera: dict[str, str] = dict(vocab.get("camera") or {})
        self.prompt: str = vocab.get("prompt", "{}")
        self.entries = {c: [str(e) for e in vocab[c]] for c in self.order}
        self._emb = {c: clip.encode_texts([self.prompt.format(e) for e in es]) for c, es in self.entries.items()}
        self.model = clip.name
        self.version = f"clip-retrieval vocab {path.name}@{hashlib.sha256(raw).hexdigest()[:12]}"

    def compose(self, frame_embeddings: np.ndarray, camera_motion: str | None = None) -> str:
        """Caption of one clip from its (k, D) frame embeddings."""
        parts = []
        for c in self.order:
            sims = (np.asarray(frame_embeddings, np.float32) @ self._emb[c].T).mean(axis=0)
            parts.append(self.entries[c][int(np.argmax(sims))])
        text = " ".join(parts[:3]) + "".join(f", {p}" for p in parts[3:])
        if camera_motion and self.camera.get(camera_motion):
            text += f", {self.camera[camera_motion]}"
        return text

    def caption(self, clips: Sequence[dict[str, Any]]) -> list[str | None]:
        return [
            self.compose(c["_frame_embeddings"], c.get("camera_motion")) if c.get("_frame_embeddings") is not None else None
            for c in clips
        ]


def transformers_source(cfg: CaptionConfig, models: ModelsConfig, download: bool = False) -> str:
    """The local directory or hub id to load; raises :class:`ModelUnavailable` when it cannot be had."""
    assert cfg.model
    local = Path(cfg.model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelUnavailable(cfg.model, f"{local} has no config.json (save it with save_pretrained)")
        return str(local)
    if cfg.model.startswith((".", "/", "~")):
        raise ModelUnavailable(cfg.model, f"directory {local} not found")
    hub_file(cfg.model, ["config.json"], label=cfg.model, cache=cache_dir(cfg.cache_dir, models),
             offline=is_offline(models), download=download, revision=cfg.revision)
    return cfg.model


def _frames_for(frames: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """``n`` frames spread evenly over the sampled ones (the middle one when ``n == 1``)."""
    if n == 1 or len(frames) == 1:
        return [frames[len(frames) // 2]]
    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    return [frames[i] for i in idx]


class TransformersCaptioner:
    """A Hugging Face captioner loaded with ``from_pretrained`` (hub id or local directory).

    Video-capable processors (with a ``video_processor``) get ``num_frames``
    frames as one video; image models get the middle sampled frame. Processors
    with a chat template get the prompt wrapped in a user turn.
    """

    kind = "transformers"

    def __init__(self, cfg: CaptionConfig, models: ModelsConfig = DEFAULT_MODELS) -> None:
        import transformers

        src = transformers_source(cfg, models, download=False)
        kw: dict[str, Any] = {"cache_dir": cache_dir(cfg.cache_dir, models), "revision": cfg.revision,
                              "trust_remote_code": cfg.trust_remote_code, "local_files_only": is_offline(models)}
        self.cfg, self.device = cfg, pick_device(cfg.device)
        self.dtype = torch_dtype(pick_precision(self.device, cfg.precision))
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(src, **kw)
            self.net = self._load(transformers, src, kw).to(self.device, self.dtype).eval()
        except OSError as e:
            raise ModelUnavailable(cfg.model or "", f"cannot load it ({e})") from e
        self.video = cfg.num_frames > 1 and getattr(self.processor, "video_processor", None) is not None
        self.chat = bool(getattr(self.processor, "chat_template", None))
        if self.chat and getattr(self.processor, "tokenizer", None) is not None:
            self.processor.tokenizer.padding_side = "left"  # decoder-only generation continues on the right
        self.model = cfg.model
        self.prompt = cfg.prompt or ("Describe this video." if self.chat else None)  # chat models need a question
        commit = getattr(self.net.config, "_commit_hash", None)
        self.version = f"transformers {transformers.__version__}" + (f"; revision {cfg.revision or commit}" if cfg.revision or commit else "")

    @staticmethod
    def _load(transformers: Any, src: str, kw: dict[str, Any]) -> Any:
        """The first Auto class whose mapping knows this config (image-text-to-text first)."""
        errors = []
        for name in _AUTO_CLASSES:
            auto = getattr(transformers, name, None)
            if auto is None:
                continue
            try:
                return auto.from_pretrained(src, **kw)
            except ValueError as e:  # "Unrecognized configuration class" for this Auto class
                errors.append(f"{name}: {e}")
        raise ValueError(f"no image/video-to-text Auto class loads {src}: {'; '.join(errors)}")

    def _inputs(self, clips_frames: list[list[np.ndarray]]) -> Any:
        media = [_frames_for(f, self.cfg.num_frames) for f in clips_frames]
        kind = "video" if self.video else "image"
        if self.chat:
            turn = [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": self.prompt}]}]
            texts: list[str] | None = [self.processor.apply_chat_template(turn, add_generation_prompt=True, tokenize=False)] * len(media)
        else:
            texts = [self.prompt] * len(media) if self.prompt else None
        visual = {"videos": media} if self.video else {"images": [m[0] for m in media]}
        kwargs = {"text": texts} if texts else {}
        return self.processor(**visual, **kwargs, return_tensors="pt", padding=bool(texts))

    def caption_frames(self, clips_frames: list[list[np.ndarray]]) -> list[str]:
        """Raw captions (before hygiene) for clips given as lists of HxWx3 uint8 frames."""
        import torch

        out: list[str] = []
        for i in range(0, len(clips_frames), self.cfg.batch_size):
            inputs = self._inputs(clips_frames[i : i + self.cfg.batch_size]).to(self.device)
            inputs = {k: v.to(self.dtype) if torch.is_floating_point(v) else v for k, v in inputs.items()}
            with torch.inference_mode():
                seq = self.net.generate(**inputs, max_new_tokens=self.cfg.max_new_tokens, do_sample=False)
            ids = inputs.get("input_ids")
            if ids is not None and seq.shape[1] >= ids.shape[1] and torch.equal(seq[:, : ids.shape[1]], ids):
                seq = seq[:, ids.shape[1] :]  # decoder-only models echo the prompt
            texts = self.processor.batch_decode(seq, skip_special_tokens=True)
            out.extend(_drop_prefix(t, self.prompt) for t in texts)
        return out

    def caption(self, clips: Sequence[dict[str, Any]]) -> list[str | None]:
        have = [i for i, c in enumerate(clips) if c.get("_frames")]
        texts = self.caption_frames([list(clips[i]["_frames"]) for i in have])
        result: list[str | None] = [None] * len(clips)
        for i, t in zip(have, texts):
            result[i] = t
        return result


def _drop_prefix(text: str, prompt: str | None) -> str:
    """Remove an echoed prompt (BLIP-style conditional captions start with it)."""
    t = " ".join(text.split())
    p = " ".join((prompt or "").split())
    return t[len(p):].lstrip(" :,") if p and t.lower().startswith(p.lower()) else t


def make_captioner(cfg: CaptionConfig, models: ModelsConfig, clip: ClipModel | None) -> RetrievalCaptioner | TransformersCaptioner | None:
    """The generator ``cfg`` names (``None`` for ``source``, which only carries input captions)."""
    if cfg.kind == "clip-retrieval":
        if clip is None:
            raise ValueError("caption.kind clip-retrieval needs the clip model section")
        return RetrievalCaptioner(clip, cfg.vocab)
    if cfg.kind == "transformers":
        return TransformersCaptioner(cfg, models)
    return None
