"""diffusers VAEs: check their weights, load them, encode pixel batches to posterior mean and log-variance.

Weights follow the rules of every curate model (:mod:`curate.models.hub`):
checked before any input is read, fetched only by ``curate models download``,
random only when the pipeline says ``random_init: true`` (and then marked).
Every VAE takes and returns one layout, whatever it does inside:
pixels ``(B, T, 3, H, W)`` in [-1, 1] (the loader's float batches), latents
``(B, C, T', H', W')``. ``AutoencoderKL`` is an image VAE, applied to each
frame (``T' = T``); the video VAEs compress time too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curate.models.hub import pretrained_kwargs, resolve_pretrained
from curate.models.settings import DEFAULT_MODELS, ModelsConfig, VaeConfig

if TYPE_CHECKING:
    import torch

IMAGE_VAES = frozenset({"AutoencoderKL"})
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
# Config keys that say how a trainer maps latents to the model's scale (whichever the class has).
FACTORS = ("scaling_factor", "shift_factor", "latents_mean", "latents_std")
RANDOM_SEED = 0  # random_init weights: the same on every load


def _label(cfg: VaeConfig) -> str:
    return f"VAE {cfg.id} ({cfg.kind} {cfg.model}{'/' + cfg.subfolder if cfg.subfolder else ''})"


def resolve(cfg: VaeConfig, models: ModelsConfig = DEFAULT_MODELS, download: bool = False) -> tuple[str, str | None]:
    """``(what from_pretrained loads, weights revision)``; raises :class:`ModelUnavailable` naming the VAE."""
    return resolve_pretrained(cfg, _label(cfg), WEIGHTS, models, download)


@dataclass
class Vae:
    """A loaded VAE and what the manifest records about it (``info``)."""

    model: Any
    kind: str
    device: str
    dtype: torch.dtype
    info: dict[str, Any]

    @property
    def image(self) -> bool:
        return self.kind in IMAGE_VAES

    def encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, logvar)`` ``(B, C, T', H', W')`` (float32, on CPU) of pixels ``(B, T, 3, H, W)`` in [-1, 1]."""
        import torch

        B, T = pixels.shape[:2]
        x = pixels.to(self.device, self.dtype)
        with torch.inference_mode():
            if self.image:
                dist = self.model.encode(x.flatten(0, 1)).latent_dist
                mean, logvar = (y.unflatten(0, (B, T)).transpose(1, 2) for y in (dist.mean, dist.logvar))
            else:
                dist = self.model.encode(x.transpose(1, 2)).latent_dist
                mean, logvar = dist.mean, dist.logvar
        return mean.float().cpu(), logvar.float().cpu()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Pixels ``(B, T, 3, H, W)`` (float32, on CPU, about [-1, 1]) of unscaled latents ``(B, C, T', H', W')``."""
        import torch

        B = latents.shape[0]
        z = latents.to(self.device, self.dtype)
        with torch.inference_mode():
            if self.image:
                x = self.model.decode(z.transpose(1, 2).flatten(0, 1)).sample.unflatten(0, (B, -1))
            else:
                x = self.model.decode(z).sample.transpose(1, 2)
        return x.float().cpu()


def vae_info(cfg: VaeConfig, models: ModelsConfig = DEFAULT_MODELS) -> dict[str, Any]:
    """What the manifest records about the VAE (class, weights revision, scaling/shift factors), without loading it.

    Raises :class:`ModelUnavailable` like :func:`resolve`: this is the weights check.
    """
    import inspect

    import diffusers

    source, revision = resolve(cfg, models)
    cls = getattr(diffusers, cfg.kind)
    conf = cls.load_config(source, **pretrained_kwargs(cfg, models, cfg.subfolder))
    defaults = inspect.signature(cls.__init__).parameters
    factors = {k: _plain(conf[k] if k in conf else defaults[k].default if k in defaults else None) for k in FACTORS}
    return {"id": cfg.id, "class": cfg.kind, "model": cfg.model, "subfolder": cfg.subfolder, "revision": revision,
            "random_init": cfg.random_init, "diffusers_version": diffusers.__version__, **factors}


def load_vae(cfg: VaeConfig, models: ModelsConfig = DEFAULT_MODELS, device: str = "cpu", precision: str = "fp32") -> Vae:
    """The VAE of ``cfg`` in eval mode on ``device``; random weights only with ``cfg.random_init``."""
    import diffusers
    import torch

    from curate.models.device import torch_dtype

    info = vae_info(cfg, models)
    source, _ = resolve(cfg, models)
    cls = getattr(diffusers, cfg.kind)
    dtype = torch_dtype(precision)
    kw = pretrained_kwargs(cfg, models, cfg.subfolder)
    if cfg.random_init:  # seeded, so every pass of one config makes the same (random) latents; global RNG untouched
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = cls.from_config(cls.load_config(source, **kw))
        model = model if dtype == torch.float32 else model.to(dtype=dtype)
    else:  # torch_dtype here, not .to(): diffusers keeps the modules a class wants in fp32 so
        model = cls.from_pretrained(source, torch_dtype=dtype, **kw)
    return Vae(model.to(device=device).eval(), cfg.kind, device, dtype, info)


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
