"""CLIP through open_clip: resolve the weights, load once, embed frames and texts.

Weights are resolved to local files here (cache, offline mode and downloads
follow :mod:`curate.models.hub`) and only then handed to open_clip with
``require_pretrained``, so a missing checkpoint can never turn into a silently
random model. Frames are preprocessed with OpenCV in uint8 and normalised as
one batched tensor op, which keeps the pipeline close to a bare forward pass.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from curate.models.device import pick_device, pick_precision, torch_dtype
from curate.models.hub import (
    ModelUnavailable,
    cache_dir,
    hub_file,
    is_offline,
    snapshot_revision,
    url_file,
)
from curate.models.settings import DEFAULT_MODELS, ClipModelConfig, EmbeddingConfig, ModelsConfig

__all__ = ["ClipModel", "ModelUnavailable", "check_available", "embed_dim", "load_clip", "preprocess_frames", "shared_clip"]

_SAFE, _BIN = "open_clip_model.safetensors", "open_clip_pytorch_model.bin"
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
_TOKENIZER_FILES = ["tokenizer*", "special_tokens_map.json", "vocab*", "merges.txt", "*.model"]


@dataclass(frozen=True)
class Resolved:
    """What open_clip is given: an architecture or ``local-dir:``, and a local weights file."""

    arch: str
    weights: str | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    quick_gelu: bool = False


def _label(cfg: ClipModelConfig) -> str:
    return f"{cfg.model} ({cfg.weights})" if cfg.weights else cfg.model


def _short(pretrained: str) -> str:
    """A tag or hub file as given; a local checkpoint by its file name."""
    return Path(pretrained).name if Path(pretrained).is_file() else pretrained


def _weight_names(filename: str) -> list[str]:
    """open_clip's own preference: a ``.safetensors`` twin first, then the file named."""
    if not filename:
        return [_SAFE, _BIN]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def resolve(cfg: ClipModelConfig, models: ModelsConfig, download: bool) -> Resolved | None:
    """Local files for ``cfg``; ``None`` when not downloading and they must still be fetched."""
    import open_clip

    label, cache, offline = _label(cfg), cache_dir(cfg.cache_dir, models), is_offline(models)
    hub = {"label": label, "cache": cache, "offline": offline, "download": download}
    if cfg.model.startswith("local-dir:"):
        d = Path(cfg.model[len("local-dir:"):])
        if not (d / "open_clip_config.json").is_file():
            raise ModelUnavailable(label, f"{d}/open_clip_config.json not found")
        if not cfg.random_init and not any(any(d.glob(p)) for p in ("*.safetensors", "*.bin", "*.pth")):
            raise ModelUnavailable(label, f"no weights (*.safetensors, *.bin, *.pth) in {d}")
        return Resolved(cfg.model)
    if cfg.model.startswith("hf-hub:"):
        repo = cfg.model[len("hf-hub:"):]
        conf = hub_file(repo, ["open_clip_config.json"], **hub)
        weights = None if cfg.random_init else hub_file(repo, [_SAFE, _BIN], **hub)
        if download and not offline:  # tokenizer files, which open_clip reads from the same folder
            from huggingface_hub import snapshot_download

            snapshot_download(repo, cache_dir=cache, allow_patterns=_TOKENIZER_FILES)
        if conf is None or (weights is None and not cfg.random_init):
            return None
        return Resolved(f"local-dir:{Path(conf).parent}")
    name = cfg.model.replace("/", "-")
    if open_clip.get_model_config(name) is None:
        raise ValueError(f"clip.model: unknown open_clip architecture {cfg.model!r}; see open_clip.list_models()")
    w = cfg.weights
    if w is None:
        return Resolved(name)
    tag = open_clip.get_pretrained_cfg(name, w)
    if tag:
        if tag.get("hf_hub"):
            repo, filename = os.path.split(tag["hf_hub"])  # "org/repo/" means the default file
            path = hub_file(repo, _weight_names(filename), **hub)
        else:
            path = url_file(tag["url"], subdir="open_clip", **hub)
        pre = {k: tag[k] for k in _PREPROCESS_KEYS if k in tag}
        return Resolved(name, path, pre, bool(tag.get("quick_gelu", False))) if path else None
    if w.startswith("hf-hub:"):
        repo, _, filename = w[len("hf-hub:"):].rpartition("/")
        if not repo:
            raise ValueError(f"clip.pretrained {w!r}: use hf-hub:org/repo/FILE, or model: hf-hub:org/repo")
        path = hub_file(repo, _weight_names(filename), **hub)
        return Resolved(name, path) if path else None
    if Path(w).is_file():
        return Resolved(name, w)
    if "/" in w or os.sep in w or w.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz")):
        raise ModelUnavailable(label, f"checkpoint file {w} not found")
    raise ValueError(f"clip.pretrained: {w!r} is neither a tag of {name} nor a file; tags: {open_clip.list_pretrained_tags_by_model(name)}")


def check_available(cfg: ClipModelConfig, models: ModelsConfig = DEFAULT_MODELS) -> None:
    """Raise :class:`ModelUnavailable` unless ``cfg``'s weights are cached, local or fetchable.

    Builds nothing and downloads nothing, so the driver can call it before any work.
    """
    resolve(cfg, models, download=False)


def embed_dim(cfg: ClipModelConfig, models: ModelsConfig = DEFAULT_MODELS) -> int:
    """The embedding size of ``cfg`` from its architecture config (no weights loaded)."""
    import open_clip

    if cfg.model.startswith(("local-dir:", "hf-hub:")):
        res = resolve(cfg.model_copy(update={"random_init": True}), models, download=True)
        conf = json.loads((Path(res.arch[len("local-dir:"):]) / "open_clip_config.json").read_text())
        return int(conf["model_cfg"]["embed_dim"])
    return int(open_clip.get_model_config(cfg.model.replace("/", "-"))["embed_dim"])


def manifest_entry(clip: ClipModelConfig, models: ModelsConfig, embedding: EmbeddingConfig) -> dict[str, Any]:
    """What the run manifest records about the stored embedding (no weights loaded)."""
    import open_clip

    return {
        "model": clip.model, "pretrained": clip.weights, "random_init": clip.random_init,
        "library": f"open_clip {open_clip.__version__}", "dim": embed_dim(clip, models), "dtype": embedding.dtype,
        "normalised": True, "aggregate": "mean of frame embeddings, L2-normalised",
    }


def preprocess_frames(frames: Sequence[np.ndarray], size: int | tuple[int, int], resize_mode: str = "shortest", fill: int = 0) -> np.ndarray:
    """HxWx3 uint8 frames as an (N, H', W', 3) uint8 batch at the model's input size.

    Mirrors open_clip's eval transform (resize then centre crop, squash, or pad
    for ``longest``); INTER_AREA when shrinking stands in for PIL's antialiased bicubic.
    """
    th, tw = (size, size) if isinstance(size, int) else tuple(size)
    out = np.empty((len(frames), th, tw, 3), np.uint8)
    for i, f in enumerate(frames):
        if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frame {i}: expected HxWx3 uint8, got {f.shape} {f.dtype}")
        h, w = f.shape[:2]
        if resize_mode == "squash":
            nh, nw = th, tw
        elif resize_mode == "shortest":
            scale = max(th / h, tw / w)
            nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        else:
            scale = min(th / h, tw / w)
            nh, nw = min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale)))
        interp = cv2.INTER_AREA if nh * nw < h * w else cv2.INTER_CUBIC
        r = cv2.resize(f, (nw, nh), interpolation=interp) if (nh, nw) != (h, w) else f
        if resize_mode == "longest":
            out[i] = fill
            y, x = (th - nh) // 2, (tw - nw) // 2
            out[i, y : y + nh, x : x + nw] = r
        else:
            y, x = (nh - th) // 2, (nw - tw) // 2
            out[i] = r[y : y + th, x : x + tw]
    return out


class ClipModel:
    """A loaded open_clip model that embeds uint8 frames and texts into L2-normalised rows."""

    def __init__(self, model: Any, tokenizer: Any, device: str, precision: str, batch_size: int, info: dict[str, Any]) -> None:
        import open_clip
        import torch

        self.model, self.tokenizer, self.device, self.batch_size, self.info = model, tokenizer, device, batch_size, info
        self.dtype = torch_dtype(precision)
        pre = open_clip.get_model_preprocess_cfg(model)
        self.size, self.resize_mode, self.fill = pre["size"], pre.get("resize_mode", "shortest"), pre.get("fill_color", 0)
        self._mean = torch.tensor(pre["mean"], device=device, dtype=self.dtype).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(pre["std"], device=device, dtype=self.dtype).view(1, 3, 1, 1) * 255
        self.dim = int(info["embed_dim"])

    @property
    def name(self) -> str:
        """``model/pretrained``, or ``model (random init)``: what a caption or manifest credits."""
        i = self.info
        if i["random_init"]:
            return f"{i['model']} (random init)"
        return "/".join(x for x in (i["model"], i["pretrained"] and _short(i["pretrained"])) if x)

    def _autocast(self) -> Any:
        import contextlib

        import torch

        return torch.autocast("cuda", dtype=self.dtype) if self.device.startswith("cuda") else contextlib.nullcontext()

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed an already preprocessed (N, H, W, 3) uint8 batch."""
        import torch

        with torch.inference_mode(), self._autocast():
            x = torch.from_numpy(pixels).to(self.device, non_blocking=True).permute(0, 3, 1, 2).to(self.dtype)
            x = ((x - self._mean) / self._std).contiguous()
            f = self.model.encode_image(x)
            return torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy()

    def encode_images(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings of HxWx3 uint8 RGB frames, ``batch_size`` per pass."""
        out = [np.zeros((0, self.dim), np.float32)]
        for i in range(0, len(frames), self.batch_size):
            out.append(self.encode_pixels(preprocess_frames(frames[i : i + self.batch_size], self.size, self.resize_mode, self.fill)))
        return np.concatenate(out)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32 L2-normalised text embeddings (truncated to the model's context)."""
        import torch

        out = [np.zeros((0, self.dim), np.float32)]
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[i : i + self.batch_size])).to(self.device)
            with torch.inference_mode(), self._autocast():
                f = self.model.encode_text(tokens)
                out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)


def load_clip(cfg: ClipModelConfig, models: ModelsConfig = DEFAULT_MODELS) -> ClipModel:
    """Resolve (downloading unless offline), build and return ``cfg``'s model in eval mode."""
    import open_clip
    import torch

    res = resolve(cfg, models, download=True)
    device = pick_device(cfg.device)
    precision = pick_precision(device, cfg.precision)
    cache = cache_dir(cfg.cache_dir, models)
    model = open_clip.create_model(
        res.arch, pretrained=res.weights, load_weights=not cfg.random_init, require_pretrained=not cfg.random_init,
        precision=precision, device=device, force_quick_gelu=res.quick_gelu,
        force_preprocess_cfg=res.preprocess or None, cache_dir=cache,
    ).eval()
    tokenizer = open_clip.get_tokenizer(res.arch, cache_dir=cache)
    with torch.inference_mode():
        dim = int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])
    weights = res.weights or (None if cfg.random_init else res.arch)
    info = {
        "model": cfg.model, "pretrained": cfg.weights, "random_init": cfg.random_init,
        "weights": weights, "revision": snapshot_revision(weights) if weights else None,
        "embed_dim": dim,
        "library": f"open_clip {open_clip.__version__}", "device": device, "precision": precision,
    }
    return ClipModel(model, tokenizer, device, precision, cfg.batch_size, info)


@lru_cache(maxsize=4)
def shared_clip(cfg: ClipModelConfig, models: ModelsConfig = DEFAULT_MODELS) -> ClipModel:
    """One model per process and config, so the CLIP stages of a local run share it."""
    return load_clip(cfg, models)
