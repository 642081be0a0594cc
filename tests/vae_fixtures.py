"""Tiny randomly initialised diffusers VAEs saved with ``save_pretrained``: loaded like downloaded checkpoints."""

from __future__ import annotations

from pathlib import Path


def tiny_vae(path: Path, kind: str = "AutoencoderKL", seed: int = 0) -> Path:
    """A few-kilobyte ``kind`` VAE (8x spatial for the image VAE, 2x for the video one) saved in ``path``."""
    import diffusers
    import torch

    if (path / "config.json").is_file():
        return path
    torch.manual_seed(seed)
    if kind == "AutoencoderKL":
        model = diffusers.AutoencoderKL(block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=4,
                                        layers_per_block=1, sample_size=32, scaling_factor=0.5, shift_factor=0.1)
    elif kind == "AutoencoderKLCogVideoX":
        model = diffusers.AutoencoderKLCogVideoX(block_out_channels=(8, 16), down_block_types=("CogVideoXDownBlock3D",) * 2,
                                                 up_block_types=("CogVideoXUpBlock3D",) * 2, latent_channels=4, norm_num_groups=4,
                                                 layers_per_block=1, temporal_compression_ratio=4)
    else:
        raise ValueError(kind)
    model.save_pretrained(path)
    return path
