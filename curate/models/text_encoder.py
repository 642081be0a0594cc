"""transformers text encoders (T5, CLIP text): check their weights, load them, encode captions to per-token embeddings.

Weights follow the rules of every curate model (:mod:`curate.models.hub`):
checked before any input is read, fetched only by ``curate models download``,
random only when the pipeline says ``random_init: true`` (and then marked).
Every encoder gives one layout: the last hidden state ``(B, L, D)`` of the
captions padded (or truncated) to ``max_length`` tokens, and the tokenizer's
attention mask ``(B, L)`` -- what text-conditioned trainers cross-attend to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curate.models.hub import ModelUnavailable, cache_dir, is_local, pretrained_kwargs, resolve_pretrained
from curate.models.settings import DEFAULT_MODELS, ModelsConfig, TextEncoderConfig

if TYPE_CHECKING:
    import torch

WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILE = "tokenizer_config.json"  # every tokenizer saved with save_pretrained has it
RANDOM_SEED = 0  # random_init weights: the same on every load


def _label(cfg: TextEncoderConfig) -> str:
    return f"text encoder {cfg.id} ({cfg.kind} {cfg.model}{'/' + cfg.subfolder if cfg.subfolder else ''})"


def _tokenizer_subfolder(cfg: TextEncoderConfig) -> str | None:
    return cfg.tokenizer_subfolder if cfg.tokenizer_subfolder is not None else cfg.subfolder


def resolve(cfg: TextEncoderConfig, models: ModelsConfig = DEFAULT_MODELS, download: bool = False) -> tuple[str, str | None]:
    """``(what from_pretrained loads, weights revision)``; raises :class:`ModelUnavailable` naming the encoder.

    The tokenizer's files are required too: an encoder without them cannot read a caption.
    Which vocabulary files a tokenizer has depends on its class, so ``download`` of a hub
    encoder lets ``AutoTokenizer`` fetch them into the same cache.
    """
    found = resolve_pretrained(cfg, _label(cfg), WEIGHTS, models, download, also=[(_tokenizer_subfolder(cfg), TOKENIZER_FILE)])
    if download and not is_local(cfg.model):
        import transformers

        sub = _tokenizer_subfolder(cfg)
        transformers.AutoTokenizer.from_pretrained(cfg.model, cache_dir=cache_dir(cfg.cache_dir, models), revision=cfg.revision,
                                                   **({"subfolder": sub} if sub else {}))
    return found


def encoder_info(cfg: TextEncoderConfig, models: ModelsConfig = DEFAULT_MODELS) -> dict[str, Any]:
    """What the manifest records about the encoder (class, weights revision, hidden size), without loading it.

    Raises :class:`ModelUnavailable` like :func:`resolve`: this is the weights check.
    """
    import transformers

    source, revision = resolve(cfg, models)
    conf = transformers.AutoConfig.from_pretrained(source, **pretrained_kwargs(cfg, models, cfg.subfolder))
    conf = getattr(conf, "text_config", None) or conf  # a whole CLIP config holds the text tower's
    hidden = getattr(conf, "d_model", None) or conf.hidden_size
    return {"id": cfg.id, "class": cfg.kind, "model": cfg.model, "subfolder": cfg.subfolder, "revision": revision,
            "random_init": cfg.random_init, "hidden_size": int(hidden),
            "max_positions": getattr(conf, "max_position_embeddings", None),  # None: relative positions (T5), any length
            "transformers_version": transformers.__version__}


@dataclass
class TextEncoder:
    """A loaded encoder with its tokenizer, and what the manifest records about it (``info``)."""

    model: Any
    tokenizer: Any
    device: str
    info: dict[str, Any]

    def encode(self, captions: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embeddings (B, L, D) float32, mask (B, L) int64)`` on CPU, ``L = max_length``."""
        import torch

        tok = self.tokenizer(captions, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        ids, mask = tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device)
        with torch.inference_mode():
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return hidden.float().cpu(), mask.cpu()


def load_text_encoder(cfg: TextEncoderConfig, models: ModelsConfig = DEFAULT_MODELS, device: str = "cpu",
                      precision: str = "fp32") -> TextEncoder:
    """The encoder of ``cfg`` in eval mode on ``device`` with its tokenizer; random weights only with ``cfg.random_init``."""
    import torch
    import transformers

    from curate.models.device import torch_dtype

    info = encoder_info(cfg, models)
    source, _ = resolve(cfg, models)
    cls = getattr(transformers, cfg.kind)
    dtype = torch_dtype(precision)
    kw = pretrained_kwargs(cfg, models, cfg.subfolder)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **pretrained_kwargs(cfg, models, _tokenizer_subfolder(cfg)))
        if cfg.random_init:  # seeded, so every pass of one config makes the same (random) embeddings
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_SEED)
                model = cls._from_config(cls.config_class.from_pretrained(source, **kw))
        else:
            model = cls.from_pretrained(source, **kw)
    except OSError as e:
        raise ModelUnavailable(_label(cfg), f"cannot load it ({e})") from e
    return TextEncoder(model.to(device=device, dtype=dtype).eval(), tokenizer, device, info)

